"""What the SDK-derived suites (`test_sdk_*.py`) share: one local Azure ML stack per module, and names.

Each suite re-expresses azure-ai-ml's own e2e tests (`Azure/azure-sdk-for-python`,
`sdk/ml/azure-ai-ml/tests/<area>/e2etests/`) against the local service, through a plain
azure-ai-ml `MLClient` as those tests make one (`sdk_client`: the app's identity and the local
cloud, but none of the app's changes to the client, such as its start-only online operations):
the workspace `dev` with the compute cluster `cpu-cluster`, the workspace `prod`, and the
registry `shared`. Every test names the SDK test it comes from (`file::test`) in its docstring.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devhost.localaml import COMPUTE, LocalAzureMLStack, running_local_azureml
from localaml import endpoints

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

# How long the local service takes over an endpoint or deployment operation here, and how often the SDK polls
# one: short, since the suites assert what Azure answers, not how long it takes (the SDK's own tests replay
# recordings without waiting; tests/contract covers the states while an operation runs).
OPERATION_SECONDS = 0.2
POLL_SECONDS = 0.1


def sdk_stack(workdir: Path) -> Iterator[LocalAzureMLStack]:
    """The local service with its storage account and Entra ID, set up as the SDK's e2e workspace is."""
    from azure.ai.ml.constants._common import LROConfigurations

    with running_local_azureml(workdir, seed_workspaces=False) as local, pytest.MonkeyPatch.context() as patch:
        # azure-ai-ml polls deployments every LROConfigurations.POLL_INTERVAL (5 s), passed at each call.
        patch.setattr(LROConfigurations, "POLL_INTERVAL", POLL_SECONDS)
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


def sdk_client(local: LocalAzureMLStack, workspace: str = "dev") -> MLClient:
    """azure-ai-ml's MLClient of a workspace as its e2e tests make one, with the app's credential."""
    from azure.ai.ml import MLClient

    clients = local.clients()
    scope = clients.workspace(workspace)
    options: dict[str, Any] = {"cloud": clients.cloud.name, "show_progress": False, "enable_telemetry": False,
                               "polling_interval": POLL_SECONDS}  # ARM polling's default is 30 s
    if clients.cloud.metadata is not None:
        options["cloud_metadata"] = dict(clients.cloud.metadata)
    return MLClient(clients.credential, scope.subscription_id, scope.resource_group, scope.workspace_name, **options)
