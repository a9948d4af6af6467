"""What the SDK-derived suites (`test_sdk_*.py`) share: one local Azure ML stack per module, and names.

Each suite re-expresses azure-ai-ml's own e2e tests (`Azure/azure-sdk-for-python`,
`sdk/ml/azure-ai-ml/tests/<area>/e2etests/`) against the local service, through the real
azure-ai-ml client as the app makes it (`LocalAzureMLStack.client`): the workspace `dev` with
the compute cluster `cpu-cluster`, the workspace `prod`, and the registry `shared`. Every test
names the SDK test it comes from (`SOURCE` + `file::test`) in its docstring.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

from devhost.localaml import COMPUTE, LocalAzureMLStack, running_local_azureml
from localaml import endpoints

SOURCE = "Azure/azure-sdk-for-python sdk/ml/azure-ai-ml/tests/"
# How long the local service takes over an endpoint or deployment operation here: short, since the suites
# assert what Azure answers, not how long it takes (tests/contract covers the states while it runs).
OPERATION_SECONDS = 0.2


def sdk_stack(workdir: Path) -> Iterator[LocalAzureMLStack]:
    """The local service with its storage account and Entra ID, set up as the SDK's e2e workspace is."""
    with running_local_azureml(workdir, seed_workspaces=False) as local:
        service = local.service
        with service.lock:
            for workspace in ("dev", "prod"):
                service.add_workspace(workspace)
                service.add(f"{service.workspace_id(workspace)}/computes/{COMPUTE}",
                            {"computeType": "AmlCompute", "computeLocation": "eastus",
                             "provisioningState": "Succeeded"}, location="eastus")
            service.add(service.registry_id(local.registry), {"discoveryUrl": service.base_url}, location="eastus")
        feature = endpoints.online(service)
        feature.endpoint_create_seconds = feature.endpoint_update_seconds = OPERATION_SECONDS
        feature.deployment_create_seconds = feature.delete_seconds = OPERATION_SECONDS
        yield local


def randstr(prefix: str) -> str:
    """A fresh name, as the SDK tests' `randstr` fixture makes one."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
