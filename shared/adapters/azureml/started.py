"""Long-running operations started and not awaited, with no polling thread left behind.

azure-ai-ml's `begin_*` methods return an azure-core `LROPoller`, and an LROPoller whose
polling method has not finished starts a daemon thread at once that polls the operation
every `LROConfigurations.POLL_INTERVAL` until it ends: minutes of a thread inside the
Functions host for every deployment, delete or traffic change. The SDK gives no way to
turn that off: `online_deployments.begin_create_or_update` and `begin_delete` pass their own
`polling=AzureMLPolling(...)`, and `online_endpoints.begin_create_or_update` takes no polling
keyword (azure-ai-ml 1.35.2, `operations/_online_deployment_operations.py`,
`operations/_online_endpoint_operations.py`). The generated operations they call do take
`polling=False` (azure-core `NoPolling`: the first request is sent, its answer kept, no
thread). So the adapter's clients get those generated operations wrapped to start without
polling; everything else the SDK does before (model, code and environment references
resolved, the endpoint checked) stays the SDK's. The end of an operation is seen later
through events or the resync, as for everything the app starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.ai.ml import MLClient


class StartOnly:
    """Generated operations whose `begin_*` calls start the operation and never poll it."""

    def __init__(self, operations: Any) -> None:
        self.operations = operations

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.operations, name)
        if not name.startswith("begin_") or not callable(target):
            return target

        def start(*args: Any, **kwargs: Any) -> Any:
            kwargs["polling"] = False  # replaces the SDK's AzureMLPolling / the default ARMPolling
            return target(*args, **kwargs)

        return start


def start_only(client: MLClient) -> MLClient:
    """`client` with its online endpoint and deployment operations starting without polling threads."""
    deployments: Any = client.online_deployments
    deployments._online_deployment = _wrapped(deployments._online_deployment)
    endpoints: Any = client.online_endpoints
    endpoints._online_operation = _wrapped(endpoints._online_operation)
    return client


def _wrapped(operations: Any) -> StartOnly:
    return operations if isinstance(operations, StartOnly) else StartOnly(operations)
