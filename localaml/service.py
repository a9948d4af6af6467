"""The local Azure ML service: the REST surface azure-ai-ml uses, with Azure's behaviour behind it.

Resources live by their ARM path and are answered in the shapes of the
Microsoft.MachineLearningServices REST spec and the SDK's recorded traffic:
`{"id", "name", "type", "properties", "systemData"}` resources, Azure's error bodies,
`Azure-AsyncOperation` / `Location` headers on long-running operations. Features
(models, jobs, endpoints, registries, MLflow, Azure Monitor, batch endpoints) install
their routes and resource hooks from their own modules (`FEATURES`). Every request is
recorded for tests to assert on, and `fail()` queues faults (404, 409, 429, 503 ...).
Every request must carry the service's token (see `credential.py`), as Azure's do.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from localaml.credential import token_secret
from localaml.errors import AzureError, Reply, arm_error
from localaml.events import EventPublisher

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "rg-mlops"
REGISTRY_RESOURCE_GROUP = "rg-registry"
PROVIDER = "/providers/Microsoft.MachineLearningServices"
SYSTEM_DATA = {
    "createdAt": "2026-11-20T09:00:00.0000000Z",
    "createdBy": "fake@example.com",
    "createdByType": "User",
    "lastModifiedAt": "2026-11-20T09:00:00.0000000Z",
    "lastModifiedBy": "fake@example.com",
    "lastModifiedByType": "User",
}
if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

Handler = Callable[..., Reply]
# A hook on a resource type: (service, path, resource, existing or None) -> Reply to answer instead, or None.
Hook = Callable[["LocalAzureML", str, dict[str, Any], dict[str, Any] | None], Reply | None]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    anonymous: bool = False  # scoring routes use endpoint keys, not ARM tokens


@dataclass
class Hooks:
    """What a feature does to one resource type beyond storing it."""

    put: Hook | None = None
    get: Hook | None = None
    delete: Hook | None = None


class LocalAzureML:
    """State and routing; `server.serving()` puts it on a loopback HTTPS port."""

    def __init__(self, token_secret: str = "local", storage: BlobServiceClient | None = None) -> None:
        self.token_secret = token_secret
        self.storage = storage  # the workspaces' and registries' storage account (Azurite over TLS)
        self.events = EventPublisher()  # Event Grid: subscribers are added to `events.urls`
        self.resources: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.monitor_series: dict[str, list[dict[str, Any]]] = {}  # metric name -> timeseries
        self.blob_sas: dict[tuple[str, str], str] = {}  # registry model (name, version) -> container SAS URL
        self.base_url = ""
        self.lock = threading.RLock()
        self.hooks: dict[str, Hooks] = {}  # resource type, lower case -> hooks
        self.routes: list[Route] = []
        from localaml import FEATURES

        for install in FEATURES:
            install(self)
        self.routes += [
            Route("GET", re.compile(r"^/operations/(?P<op>[^/]+)$"), self._operation),
            Route("GET", re.compile(r"^/operationResults/(?P<op>[^/]+)$"), self._operation_result),
            Route("GET", re.compile(r"^/mferp/managementfrontend(?P<path>/subscriptions/.+)$"), self._get),
            Route("PUT", re.compile(r"^/mferp/managementfrontend(?P<path>/subscriptions/.+)$"), self._put),
            Route("GET", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._get),
            Route("PUT", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._put),
            Route("DELETE", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._delete),
        ]

    def route(self, method: str, pattern: str, handler: Handler, *, anonymous: bool = False) -> None:
        """Add a route; routes added by features are tried before the generic resource routes."""
        self.routes.append(Route(method, re.compile(pattern), handler, anonymous))

    def on(self, resource_type: str, hooks: Hooks) -> None:
        """Hooks for a resource type such as `workspaces/onlineEndpoints/deployments`."""
        self.hooks[resource_type.lower()] = hooks

    # -- what the tests set up and look at ------------------------------------------------

    @staticmethod
    def workspace_id(name: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}{PROVIDER}/workspaces/{name}"

    @staticmethod
    def registry_id(name: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}{PROVIDER}/registries/{name}"

    def fail(
        self, method: str, path_regex: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None,
        code: str = "", message: str = "injected fault",
    ) -> None:
        """Answer the next `times` matching requests with `status` and an ARM error body."""
        body = {"error": {"code": code or f"Http{status}", "message": message}}
        self.faults.append(Fault(method, re.compile(path_regex), status, headers or {}, body, times))

    def add(self, path: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """Store a resource as the service would return it."""
        resource = self.resource(path, {"properties": properties, **extra})
        self.resources[path.lower()] = resource
        return resource

    def add_workspace(self, name: str, location: str = "eastus") -> dict[str, Any]:
        """A workspace with its default datastore."""
        from localaml.datastores import add_datastore

        host = self.base_url.removeprefix("https://").rstrip("/")
        add_datastore(self, name)
        return self.add(
            self.workspace_id(name),
            {
                "friendlyName": name,
                "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "discoveryUrl": f"{self.base_url}discovery",
                "mlFlowTrackingUri": f"azureml://{host}/mlflow/v1.0{self.workspace_id(name)}",
                "provisioningState": "Succeeded",
            },
            location=location,
            identity={"type": "SystemAssigned"},
            sku={"name": "Basic", "tier": "Basic"},
            kind="Default",
        )

    def add_model(
        self, scope: str, name: str, version: str, tags: dict[str, str] | None = None, model_uri: str = ""
    ) -> dict[str, Any]:
        """A model version in a workspace or registry scope (an ARM id)."""
        self.add(f"{scope}/models/{name}", {"description": "", "tags": {}, "properties": {}, "latestVersion": version})
        return self.add(
            f"{scope}/models/{name}/versions/{version}",
            {
                "description": "",
                "tags": tags or {},
                "properties": {},
                "flavors": {"python_function": {"data": {"loader_module": "test"}}},
                "modelType": "custom_model",
                "modelUri": model_uri
                or f"azureml://subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/workspaces/dev"
                f"/datastores/workspaceblobstore/paths/models/{name}/{version}/model.onnx",
                "isAnonymous": False,
                "isArchived": False,
                "provisioningState": "Succeeded",
            },
        )

    def add_online_endpoint(
        self, workspace: str, name: str, traffic: dict[str, int], mirror_traffic: dict[str, int] | None = None,
        state: str = "Succeeded",
    ) -> dict[str, Any]:
        return self.add(
            f"{self.workspace_id(workspace)}/onlineEndpoints/{name}",
            {"description": "", "properties": {}, "authMode": "Key", "traffic": traffic,
             "mirrorTraffic": mirror_traffic or {}, "provisioningState": state,
             "scoringUri": f"{self.base_url}score/{name}", "swaggerUri": f"{self.base_url}swagger/{name}"},
            location="eastus", kind="Managed", tags={}, identity={"type": "SystemAssigned"},
        )

    def add_online_deployment(self, workspace: str, endpoint: str, name: str, model: str) -> dict[str, Any]:
        return self.add(
            f"{self.workspace_id(workspace)}/onlineEndpoints/{endpoint}/deployments/{name}",
            {"description": "", "properties": {}, "model": model, "instanceType": "Standard_DS3_v2",
             "endpointComputeType": "Managed", "provisioningState": "Succeeded", "environmentVariables": {},
             "scaleSettings": {"scaleType": "Default"}},
            location="eastus", kind="Managed", tags={}, sku={"name": "Default", "tier": "Standard", "capacity": 1},
        )

    def add_batch_endpoint(self, workspace: str, name: str) -> dict[str, Any]:
        return self.add(
            f"{self.workspace_id(workspace)}/batchEndpoints/{name}",
            {"description": "", "properties": {}, "authMode": "AADToken", "provisioningState": "Succeeded",
             "scoringUri": f"{self.base_url}batch/{name}/jobs", "defaults": {"deploymentName": "default"}},
            location="eastus", kind="Batch", tags={}, identity={"type": "SystemAssigned"},
        )

    def requests_to(self, method: str, path_regex: str) -> list[Recorded]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    # -- request handling -----------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: bytes, headers: dict[str, str]) -> Reply:
        parts = urlsplit(raw_path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return arm_error(
                400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        with self.lock:
            # Recorded as sent: handlers work on their own copies, never on what the client sent.
            self.requests.append(Recorded(method, parts.path, query, json.loads(body) if body else None, headers))
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.pattern.search(parts.path):
                    fault.times -= 1
                    return Reply(fault.status, fault.body, fault.headers)
            for route in self.routes:
                match = route.pattern.match(parts.path)
                if route.method != method or not match:
                    continue
                if not route.anonymous and not self._authorized(headers):
                    return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
                try:
                    return route.handler(query=query, body=payload, headers=headers, **match.groupdict())
                except AzureError as error:
                    return error.reply()
                except (KeyError, TypeError, ValueError) as error:  # a request the service cannot read
                    return arm_error(400, "UserError", f"{method} {parts.path}: the request is malformed: {error!r}")
        return arm_error(404, "NoRoute", f"the local Azure ML service has no route for {method} {parts.path}")

    def _authorized(self, headers: dict[str, str]) -> bool:
        authorization = next((value for key, value in headers.items() if key.lower() == "authorization"), None)
        return token_secret(authorization) == self.token_secret

    def resource(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """`body` as a stored resource of `path`: with id, name, type and systemData."""
        segments = path.strip("/").split("/")
        provider_at = max(i for i, s in enumerate(segments) if s.lower() == "providers")
        kinds = segments[provider_at + 2 :: 2]
        resource = dict(body)
        registry = re.search(r"/registries/([^/]+)/(.+)$", path)
        resource.update(
            # Registry assets are named by azureml:// ids, as the registry service returns them.
            id=f"azureml://registries/{registry[1]}/{registry[2]}" if registry and "/" in registry[2] else path,
            name=segments[-1],
            type=segments[provider_at + 1] + "/" + "/".join(kinds),
            systemData=SYSTEM_DATA,
        )
        return resource

    def _hooks(self, resource_type: str) -> Hooks:
        kind = resource_type.lower().removeprefix("microsoft.machinelearningservices/")
        return self.hooks.get(kind, Hooks())

    def _get(self, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        key = path.lower()
        if key in self.resources:
            resource = self.resources[key]
            hook = self._hooks(resource["type"]).get
            return (hook and hook(self, path, resource, resource)) or Reply(200, resource)
        children = [r for k, r in self.resources.items() if k.rsplit("/", 1)[0] == key]
        if children or key.endswith(("/versions", "/deployments", "/jobs")):
            return Reply(200, {"value": children})
        return arm_error(404, "ResourceNotFound", f"The resource {path} was not found.")

    def _put(self, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        resource = self.resource(path, body or {})
        resource.setdefault("properties", {})
        kind = resource["type"].lower()
        existing = self.resources.get(path.lower())
        hook = self._hooks(kind).put
        if hook is not None:
            answer = hook(self, path, resource, existing)
            if answer is not None:
                return answer
        is_long_running = kind.endswith(("onlineendpoints", "deployments", "batchendpoints"))
        if kind.endswith("/jobs"):
            resource["properties"].setdefault("status", "NotStarted")
            resource["properties"]["services"] = {"Studio": {"endpoint": f"{self.base_url}studio/{resource['name']}"}}
        else:
            resource["properties"]["provisioningState"] = "Updating" if is_long_running else "Succeeded"
        if kind.endswith("onlineendpoints/deployments"):
            resource["properties"].setdefault("scaleSettings", {"scaleType": "Default"})
        self.resources[path.lower()] = resource
        headers = {}
        if is_long_running:
            operation = uuid.uuid4().hex
            headers["Azure-AsyncOperation"] = f"{self.base_url}operations/{operation}"
        return Reply(200 if existing else 201, resource, headers)

    def _delete(self, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        existing = self.resources.get(path.lower())
        if existing is None:
            return Reply(204)
        hook = self._hooks(existing["type"]).delete
        if hook is not None:
            answer = hook(self, path, existing, existing)
            if answer is not None:
                return answer
        del self.resources[path.lower()]
        return Reply(202, None, {"Location": f"{self.base_url}operationResults/{uuid.uuid4().hex}"})

    def _operation(self, op: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        """An `Azure-AsyncOperation` status: finished at once."""
        return Reply(200, {"status": "Succeeded"})

    def _operation_result(self, op: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        """A `Location` poll: finished at once, nothing to return."""
        return Reply(204)
