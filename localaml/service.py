"""The local Azure ML service: the REST surface azure-ai-ml uses, with Azure's behaviour behind it.

Resources live by their ARM path and are answered in the shapes of the
Microsoft.MachineLearningServices REST spec and the SDK's recorded traffic:
`{"id", "name", "type", "properties", "systemData"}` resources, Azure's error bodies,
`Azure-AsyncOperation` / `Location` headers on long-running operations. Features
(models, jobs, endpoints, registries, MLflow, Azure Monitor, batch endpoints) install
their routes and resource hooks from their own modules (`FEATURES`). Every request is
recorded for tests to assert on, and `fail()` queues faults (404, 409, 429, 503 ...).
Every request must carry a valid access token of the tenant's Entra ID (`entra`, see
`credential.py`), as Azure's do; a job the service runs logs to MLflow with a token of the
service's own.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from localaml.credential import EntraTokens, token_claims, token_secret
from localaml.errors import AzureError, Reply, arm_error, endpoint_not_found, not_found, user_error
from localaml.events import EventPublisher

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "rg-mlops"
REGISTRY_RESOURCE_GROUP = "rg-registry"
PROVIDER = "/providers/Microsoft.MachineLearningServices"
SEED_IDENTITY = "localaml@localaml.test"  # who made what tests and the sandbox seed (no request, no token)
LOCATION = "eastus"
NO_END_TIME = "0001-01-01T00:00:00+00:00"  # an unfinished operation's endTime, as recorded
# Resource types whose PUT is a long-running operation (Azure-AsyncOperation) and whose DELETE answers 202.
LONG_RUNNING = ("onlineendpoints", "deployments", "batchendpoints")
# Asset containers: a missing one is named "<Kind> container" in Azure ML's 404 (recorded for models).
ASSET_KINDS = {"models": "Model", "components": "Component", "environments": "Environment", "data": "Data",
               "codes": "Code"}
# What follows `/registries/<name>/` in a registry model version's path (answered in the registry's own shape).
REGISTRY_MODEL_VERSION = re.compile(r"^models/[^/]+/versions/[^/]+$", re.IGNORECASE)
if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

Handler = Callable[..., Reply]
OPERATION_STATUS = (
    r"^/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+/mfeOperationsStatus/(?P<op>[^/]+)$"
)
# A hook on a resource type: (service, path, resource, existing or None) -> Reply to answer instead, or None.
Hook = Callable[["LocalAzureML", str, dict[str, Any], dict[str, Any] | None], Reply | None]


# Where a request arrived: the workspace or registry its path is under (an ARM path, also behind the registry's
# front end `/mferp/managementfrontend`), or the registry of a discovery call.
SCOPE = re.compile(
    r"^(?:/mferp/managementfrontend)?/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/(?P<kind>workspaces|registries)/(?P<name>[^/]+)", re.IGNORECASE
)
DISCOVERY_SCOPE = re.compile(r"^/registrymanagement/v1\.0/registries/(?P<name>[^/]+)/discovery$", re.IGNORECASE)
MAX_RECORDED = 20_000  # requests kept for tests (the oldest half goes beyond): a long-running service stays small


@dataclass
class Recorded:
    """A request as it arrived, for tests to assert on (the service itself never reads these)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")

    @property
    def scope(self) -> str | None:
        """The scope the request arrived in: `<subscription>/<resource group>/workspaces/<name>` or
        `.../registries/<name>`, `registries/<name>` for a registry's discovery; None for the rest (operations)."""
        match = SCOPE.match(self.path)
        if match is not None:
            return f"{match['subscription']}/{match['group']}/{match['kind'].lower()}/{match['name']}"
        discovery = DISCOVERY_SCOPE.match(self.path)
        return f"registries/{discovery['name']}" if discovery is not None else None


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int
    delay: float = 0.0  # seconds before answering: longer than a client's read timeout, it is a timeout


@dataclass
class Operation:
    """An `Azure-AsyncOperation` (mfeOperationsStatus) of the service: what it is about and how far it is."""

    id: str
    resource: str
    status: str = "Succeeded"  # InProgress / Creating / Updating / Deleting while running; Succeeded, Failed, Canceled
    start: str = field(default_factory=lambda: now())
    end: str | None = None
    error: dict[str, Any] | None = None


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

    def __init__(
        self, token_secret: str = "local", storage: BlobServiceClient | None = None, entra: EntraTokens | None = None,
    ) -> None:
        self.token_secret = token_secret  # of the service's own tokens, for the jobs it runs (MLflow tracking)
        self.entra = entra  # the tenant's Entra ID, whose tokens every other request must carry
        self.storage = storage  # the workspaces' and registries' storage account (Azurite over TLS)
        self.events = EventPublisher()  # Event Grid: subscribers are added to `events.urls`
        self.resources: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.monitor_series: dict[str, list[dict[str, Any]]] = {}  # metric name -> timeseries
        self.blob_sas: dict[tuple[str, str], str] = {}  # registry model (name, version) -> container SAS URL
        self.operations: dict[str, Operation] = {}  # Azure-AsyncOperation id -> state
        self.page_size = 100  # items per page of a list; `nextLink` leads to the next page
        self.base_url = ""
        self.lock = threading.RLock()
        self.hooks: dict[str, Hooks] = {}  # resource type, lower case -> hooks
        self.routes: list[Route] = []
        from localaml import FEATURES

        for install in FEATURES:
            install(self)
        self.routes += [
            Route("GET", re.compile(OPERATION_STATUS), self._operation),
            Route("GET", re.compile(OPERATION_STATUS.replace("mfeOperationsStatus", "mfeOperationResults")),
                  self._operation_result),
            Route("GET", re.compile(r"^/operations/(?P<op>[^/]+)$"), self._operation),
            Route("GET", re.compile(r"^/operationResults/(?P<op>[^/]+)$"), self._operation_result),
            Route("GET", re.compile(r"^/mferp/managementfrontend(?P<path>/subscriptions/.+)$"), self._get),
            Route("PUT", re.compile(r"^/mferp/managementfrontend(?P<path>/subscriptions/.+)$"), self._put),
            Route("GET", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._get),
            Route("PUT", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._put),
            Route("DELETE", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._delete),
        ]

    def close(self) -> None:
        """Stop what runs in the background: job steps and pending endpoint operations."""
        from localaml import endpoints, runner

        runner.stop_all(self)
        endpoints.online(self).reset()

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
        code: str = "", message: str = "injected fault", delay: float = 0.0,
    ) -> None:
        """Answer the next `times` matching requests with `status` and an ARM error body, after `delay` s.

        The delay passes outside the service's lock, so a slow answer holds up no other request.
        """
        body = {"error": {"code": code or f"Http{status}", "message": message}}
        self.faults.append(Fault(method, re.compile(path_regex), status, headers or {}, body, times, delay))

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
            tags={},
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
                "stage": "Development",  # Azure's default stage (recorded: test_crud_file.json)
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

    @staticmethod
    def studio_url(job_path: str) -> str:
        """A job's page in Azure ML studio: `https://ml.azure.com/runs/<name>?wsid=<workspace>`, to which the
        SDK appends `&tid=<tenant>` (azure-ai-ml `_job_operations._append_tid_to_studio_url`, `TID_FMT`)."""
        workspace, _, name = job_path.rpartition("/jobs/")
        return f"https://ml.azure.com/runs/{name}?wsid={workspace}"

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
            if len(self.requests) > MAX_RECORDED:
                del self.requests[: MAX_RECORDED // 2]
            fault = next((f for f in self.faults if f.times > 0 and f.method == method
                          and f.pattern.search(parts.path)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None:
            time.sleep(fault.delay)
            return Reply(fault.status, fault.body, fault.headers)
        with self.lock:
            for route in self.routes:
                match = route.pattern.match(parts.path)
                if route.method != method or not match:
                    continue
                if not route.anonymous and not self._authorized(headers, parts.path):
                    return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
                try:
                    return route.handler(query=query, body=payload, headers=headers, **match.groupdict())
                except AzureError as error:
                    return error.reply()
                except (KeyError, TypeError, ValueError) as error:  # a request the service cannot read
                    return arm_error(400, "UserError", f"{method} {parts.path}: the request is malformed: {error!r}")
        return arm_error(404, "NoRoute", f"the local Azure ML service has no route for {method} {parts.path}")

    def _authorized(self, headers: dict[str, str], path: str) -> bool:
        """A valid token of the tenant's Entra ID; on the MLflow routes, also one the service issued a job."""
        authorization = next((value for key, value in headers.items() if key.lower() == "authorization"), None)
        if self.entra is not None and self.entra.claims(authorization) is not None:
            return True
        return path.startswith("/mlflow/") and token_secret(authorization) == self.token_secret

    # -- generic ARM behaviour -------------------------------------------------------------

    def resource(
        self, path: str, body: dict[str, Any], *, by: tuple[str, str] | None = None,
        existing: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`body` (copied, never changed) as a stored resource of `path`: with id, name, type and systemData.

        systemData holds real times and who made and last changed the resource (`by`: the
        request's identity, see `identity()`), creation kept from `existing`: the ARM
        systemData contract, in the shape of the SDK's recordings (e.g. `test_crud_file.json`).
        """
        segments = path.strip("/").split("/")
        provider_at = max(i for i, s in enumerate(segments) if s.lower() == "providers")
        kinds = segments[provider_at + 2 :: 2]
        resource = copy.deepcopy(body)
        registry = re.search(r"/registries/([^/]+)/(.+)$", path)
        resource.update(
            # Registry assets are named by azureml:// ids, as the registry service returns them.
            id=f"azureml://registries/{registry[1]}/{registry[2]}" if registry and "/" in registry[2] else path,
            name=segments[-1],
            type=segments[provider_at + 1] + "/" + "/".join(kinds),
            systemData=system_data(by or (SEED_IDENTITY, "Application"), (existing or {}).get("systemData")),
        )
        if registry and REGISTRY_MODEL_VERSION.match(registry[2]):
            from localaml.registries import as_registry_answers

            as_registry_answers(resource)
        return resource

    def _hooks(self, resource_type: str) -> Hooks:
        kind = resource_type.lower().removeprefix("microsoft.machinelearningservices/")
        return self.hooks.get(kind, Hooks())

    def _get(self, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        key = path.lower()
        if key in self.resources:
            resource = self.resources[key]
            hook = self._hooks(type_of(path)).get
            return (hook and hook(self, path, resource, resource)) or Reply(200, resource)
        if is_collection(path):
            return self._list(path, query)
        raise self._not_found(path)

    def _list(self, path: str, query: dict[str, str]) -> Reply:
        """A collection: `value` and, while more are left, `nextLink` (ARM paging).

        Only the collection's own type is listed (a versions list lists versions); archived
        items only when `listViewType` asks; `$orderBy=createdtime desc|asc` and `$top` as
        the SDK sends them for `label="latest"` (recorded: `test_models_get_latest_label.json`);
        `$skipToken` is the continuation the `nextLink` carries.
        """
        key = path.lower()
        parent = key.rsplit("/", 1)[0]
        if parent not in self.resources and _is_workspace_model(path):
            # Recorded: a workspace answers 404 ModelNotFound for the versions of a model it does not have;
            # a registry answers an empty list (test_create_get_download_model_registry.json).
            raise self._not_found(path.rsplit("/", 1)[0])
        kind = type_of(path).lower()
        items = [r for k, r in self.resources.items() if k.rsplit("/", 1)[0] == key and type_of(k).lower() == kind]
        items = _in_view(items, query.get("listViewType", "ActiveOnly"))
        content_hash = _query(query, "hash")
        if content_hash:
            # Versions with this content (generated client `CodeVersionsOperations.list`: `hash`, `hashVersion`):
            # how azure-ai-ml finds a code version it uploaded before (SDK test_code.py::test_asset_path_update).
            items = [r for r in items if (r["properties"].get("properties") or {}).get("hash_sha256") == content_hash]
        order = _query(query, "$orderBy")
        if order:
            field_name, _, direction = order.strip().partition(" ")
            if field_name.lower() != "createdtime" or direction.lower() not in ("", "asc", "desc"):
                raise user_error(f"$orderBy {order!r} is not supported: order by createdtime asc|desc", "BadArgument")
            # Stable: resources made in the same microsecond keep the order they were made in.
            items = sorted(items, key=lambda r: r["systemData"]["createdAt"], reverse=direction.lower() == "desc")
        # `$top` is the page's size, not the list's: Azure answers `$top` items and a `nextLink` (carrying
        # `$top` and an opaque `$skipToken`) while more are left (recorded: test_models_get_latest_label.json,
        # `$top=1` after versions 3 and 4). The SDK's `skip` keyword sends a continuation as `$skip`.
        top = _query(query, "$top")
        size = min(int(top), self.page_size) if top and int(top) > 0 else self.page_size
        start = _continuation(_query(query, "$skipToken") or _query(query, "$skip"))
        page = items[start : start + size]
        answer: dict[str, Any] = {"value": page}
        if start + size < len(items):
            prefix = "mferp/managementfrontend" if "/registries/" in key else ""
            rest = "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items()
                            if k.lower() not in ("$skip", "$skiptoken"))
            token = quote(base64.b64encode(json.dumps({"offset": start + size}).encode()).decode())
            answer["nextLink"] = f"{self.base_url}{prefix}{path.lstrip('/')}?{rest}&$skipToken={token}"
        return Reply(200, answer)

    def _not_found(self, path: str) -> AzureError:
        """Azure's 404 of `path`: ARM's own for a workspace or registry, Azure ML's UserError below them.

        ARM: "The Resource '...' under resource group '...' was not found" (docs: Azure Resource
        Manager, "Resolve resource not found errors"). Azure ML: UserError with the reason
        nested, recorded for a model container (`ModelNotFound`, "Model container with name: X
        not found."); for other types the nested code is not recorded and is named the same way.
        """
        segments = path.strip("/").split("/")
        provider_at = max(i for i, s in enumerate(segments) if s.lower() == "providers")
        below = segments[provider_at + 2 :]
        name = segments[-1]
        if len(below) <= 2:
            group = segments[3] if len(segments) > 3 else ""
            return AzureError(
                404, "ResourceNotFound",
                f"The Resource '{segments[provider_at + 1]}/{'/'.join(below)}' under resource group '{group}' was not "
                "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        kind = below[-2] if len(below) % 2 == 0 else below[-1]
        if kind.lower() in ("onlineendpoints", "batchendpoints") and len(below) % 2 == 0:
            return endpoint_not_found(name, below[1])
        if kind.lower() in ASSET_KINDS:
            asset = ASSET_KINDS[kind.lower()]
            return not_found(f"{asset}NotFound", f"{asset} container with name: {name} not found.")
        if kind.lower() == "versions":
            asset = ASSET_KINDS.get(below[-4].lower(), "Asset")
            return not_found(f"{asset}VersionNotFound", f"{asset} version {below[-3]}:{name} not found.")
        singular = kind[0].upper() + kind[1:].removesuffix("s")
        return not_found(f"{singular}NotFound", f"{singular} with name: {name} not found.")

    def _put(self, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        existing = self.resources.get(path.lower())
        resource = self.resource(path, body or {}, by=identity(headers), existing=existing)
        resource.setdefault("properties", {})
        kind = type_of(path).lower()
        hook = self._hooks(kind).put
        if hook is not None:
            answer = hook(self, path, resource, existing)
            if answer is not None:
                return answer
        is_long_running = kind.endswith(LONG_RUNNING)
        if kind.endswith("/jobs"):
            resource["properties"].setdefault("status", "NotStarted")
            resource["properties"]["services"] = {"Studio": {"endpoint": self.studio_url(path)}}
        elif is_long_running:
            # What Azure answers while the operation runs (recorded: 201 "Creating", test_online_endpoint_e2e.json).
            # The generic service does no work behind it: the state stays until a feature (endpoints) moves it.
            resource["properties"]["provisioningState"] = "Updating" if existing else "Creating"
        else:
            resource["properties"]["provisioningState"] = "Succeeded"
        if kind.endswith("onlineendpoints/deployments"):
            resource["properties"].setdefault("scaleSettings", {"scaleType": "Default"})
        self.resources[path.lower()] = resource
        url = f"{self.base_url}{path.lstrip('/')}?api-version={query.get('api-version', '')}"
        if not is_long_running:
            # Recorded: a created asset answers 201 with its own URL in Location (test_crud_file.json).
            return Reply(200, resource) if existing else Reply(201, resource, {"Location": url})
        # Recorded: Azure-AsyncOperation (an mfeOperationsStatus URL) and Location (the resource's own URL).
        operation = self.start_operation(path)
        headers_out = {"Azure-AsyncOperation": self.operation_url(operation.id, query), "Location": url}
        return Reply(200 if existing else 201, resource, headers_out)

    def _delete(self, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        """ARM DELETE: 204 for what is not there; 202 + Location for long-running types; else 200.

        REST spec examples: `OnlineDeployment/delete.json` (200, 202, 204), `ModelVersion/delete.json` (200, 204).
        """
        existing = self.resources.get(path.lower())
        if existing is None:
            return Reply(204)
        hook = self._hooks(type_of(path)).delete
        if hook is not None:
            answer = hook(self, path, existing, existing)
            if answer is not None:
                return answer
        del self.resources[path.lower()]
        if not type_of(path).lower().endswith(LONG_RUNNING):
            return Reply(200)
        # Recorded (test_batch_endpoint_create.json): 202 with Azure-AsyncOperation and Location (mfeOperationResults).
        operation = self.start_operation(path)
        status = self.operation_url(operation.id, query)
        result = status.replace("/mfeOperationsStatus/", "/mfeOperationResults/")
        return Reply(202, None, {"Azure-AsyncOperation": status, "Location": result})

    # -- long-running operations -----------------------------------------------------------

    def start_operation(self, resource: str, status: str = "Succeeded") -> Operation:
        """Track an operation on `resource`; features advance `status` (and `end`) as their work goes on."""
        operation = Operation(str(uuid.uuid4()), resource, status)
        if status in ("Succeeded", "Failed", "Canceled"):
            operation.end = operation.start
        self.operations[operation.id] = operation
        return operation

    def operation_url(self, operation_id: str, query: dict[str, str] | None = None) -> str:
        """The `Azure-AsyncOperation` URL of an operation, in Azure ML's shape (mfeOperationsStatus)."""
        api_version = (query or {}).get("api-version", "2024-04-01")
        return (
            f"{self.base_url}subscriptions/{SUBSCRIPTION}{PROVIDER}/locations/{LOCATION}/mfeOperationsStatus/"
            f"{operation_id}?api-version={api_version}"
        )

    def _operation(self, op: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        """An `Azure-AsyncOperation` status, as recorded (test_online_endpoint_e2e.json).

        `{id, name, startTime, endTime, percentComplete, status}`; endTime is 0001-01-01 while
        it runs. Ids the service did not hand out (made by features) are finished.
        """
        operation = self.operations.get(op) or Operation(op, "", "Succeeded")
        answer: dict[str, Any] = {
            "id": f"/subscriptions/{SUBSCRIPTION}{PROVIDER}/locations/{LOCATION}/mfeOperationsStatus/{op}",
            "name": op,
            "startTime": operation.start,
            "endTime": operation.end or NO_END_TIME,
            "percentComplete": 0.0,  # recorded as 0.0 even once Succeeded
            "status": operation.status,
        }
        if operation.error is not None:
            answer["error"] = operation.error
        return Reply(200, answer)

    def _operation_result(self, op: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        """A `Location` poll: 202 while the operation runs, then 204 (ARM's asynchronous operation contract)."""
        operation = self.operations.get(op)
        if operation is not None and operation.end is None:
            return Reply(202, None, {"Location": f"{self.base_url}operationResults/{op}", "Retry-After": "0"})
        return Reply(204)


def now() -> str:
    """The time as Azure ML writes it in systemData: ISO 8601 with fractions and the UTC offset."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def system_data(by: tuple[str, str], created: dict[str, Any] | None) -> dict[str, str]:
    """ARM systemData: made by / at kept from `created` (the resource before), last changed by `by` now."""
    when = now()
    who, kind = by
    made = created or {"createdAt": when, "createdBy": who, "createdByType": kind}
    return {
        "createdAt": made["createdAt"], "createdBy": made["createdBy"], "createdByType": made["createdByType"],
        "lastModifiedAt": when, "lastModifiedBy": who, "lastModifiedByType": kind,
    }


def identity(headers: dict[str, str]) -> tuple[str, str]:
    """Who a request acts as: the token's `upn` (a user), else its `appid` / `oid` (an application)."""
    authorization = next((value for key, value in headers.items() if key.lower() == "authorization"), "")
    claims = token_claims(authorization)
    if claims.get("upn"):
        return str(claims["upn"]), "User"
    if claims.get("appid") or claims.get("oid"):
        return str(claims.get("appid") or claims.get("oid")), "Application"
    return SEED_IDENTITY, "Application"


def is_collection(path: str) -> bool:
    """Whether an ARM path names a collection (`.../models/x/versions`), not an item (`.../versions/1`)."""
    segments = path.strip("/").split("/")
    provider_at = max(i for i, s in enumerate(segments) if s.lower() == "providers")
    return len(segments[provider_at + 2 :]) % 2 == 1


def type_of(collection: str) -> str:
    """The resource type of a collection's items, e.g. `Microsoft.MachineLearningServices/workspaces/models`, or of
    an item's own path. Hooks and lists go by it, not by a resource's `type`: a registry answers its own there."""
    segments = collection.strip("/").split("/")
    provider_at = max(i for i, s in enumerate(segments) if s.lower() == "providers")
    return segments[provider_at + 1] + "/" + "/".join(segments[provider_at + 2 :: 2])


def _is_workspace_model(path: str) -> bool:
    return re.search(r"/workspaces/[^/]+/models/[^/]+/versions$", path, flags=re.IGNORECASE) is not None


def _in_view(items: list[dict[str, Any]], view: str) -> list[dict[str, Any]]:
    """`listViewType`: ActiveOnly (the default), ArchivedOnly or All."""
    if view.lower() == "all":
        return items
    archived = view.lower() == "archivedonly"
    return [r for r in items if bool(r.get("properties", {}).get("isArchived")) == archived]


def _continuation(token: str | None) -> int:
    """Where a list goes on from: the offset in a `$skipToken` this service wrote (or a plain number)."""
    if not token:
        return 0
    if token.isdigit():
        return int(token)
    try:
        return int(json.loads(base64.b64decode(token))["offset"])
    except (ValueError, KeyError, TypeError) as error:
        raise user_error(f"the continuation token {token!r} is not valid", "BadArgument") from error


def _query(query: dict[str, str], name: str) -> str | None:
    """A query parameter by name, case-insensitively (`$orderBy`, `$orderby`)."""
    return next((value for key, value in query.items() if key.lower() == name.lower()), None)


# -- persistence: the service's resources to a JSON file and back (runners and timers are not state) ----------

STATE_FORMAT = 1
REQUEST_LOG_SECONDS = 3600  # scoring requests older than this are not kept: metrics look back minutes
SETTLING = ("creating", "updating", "scaling")
RESTARTED = "the local Azure ML service restarted while this was in progress"


def state_text(service: LocalAzureML) -> str:
    """The service's state as JSON text, taken under its lock so that it is one consistent moment."""
    from localaml import endpoints

    with service.lock:
        horizon = time.time() - REQUEST_LOG_SECONDS
        log: dict[str, list[Any]] = getattr(service, "request_log", {})
        document = {
            "format": STATE_FORMAT,
            "baseUrl": service.base_url,
            "tokenSecret": service.token_secret,
            "resources": service.resources,
            "runs": service.runs,
            "monitorSeries": service.monitor_series,
            "blobSas": [[name, version, url] for (name, version), url in service.blob_sas.items()],
            "operations": [vars(operation) for operation in service.operations.values()],
            "endpointKeys": endpoints.online(service).keys,
            "requestLog": {key: [entry for entry in entries if entry[0] >= horizon] for key, entries in log.items()},
        }
        return json.dumps(document, separators=(",", ":"))


def restore_state(service: LocalAzureML, text: str) -> None:
    """Load what `state_text` wrote into a service already serving (its `base_url` set).

    URLs of the service's former address (scoring URIs, MLflow tracking URIs) are moved to
    the current one. Work that was in flight when the service stopped cannot resume, since
    its runner process and timers are gone: those jobs and operations end Failed, resources
    left Creating, Updating or Scaling are Failed and ones left Deleting are gone, as Azure
    reports an operation its platform lost.
    """
    from localaml import endpoints

    old = urlsplit(json.loads(text).get("baseUrl") or "").netloc
    new = urlsplit(service.base_url).netloc
    document = json.loads(text.replace(old, new) if old and new else text)
    if document.get("format") != STATE_FORMAT:
        raise ValueError(f"state format {document.get('format')!r} is not {STATE_FORMAT}")
    with service.lock:
        service.token_secret = document["tokenSecret"]
        service.resources = document["resources"]
        service.runs = document["runs"]
        service.monitor_series = document["monitorSeries"]
        service.blob_sas = {(name, version): url for name, version, url in document["blobSas"]}
        service.operations = {item["id"]: Operation(**item) for item in document["operations"]}
        endpoints.online(service).keys.update({key: (pair[0], pair[1])
                                               for key, pair in document["endpointKeys"].items()})
        service.request_log = {key: [tuple(entry) for entry in entries]  # type: ignore[attr-defined]
                               for key, entries in document["requestLog"].items()}
        _end_interrupted(service)


def _end_interrupted(service: LocalAzureML) -> None:
    """Fail what was running when the service stopped (see `restore_state`)."""
    from localaml import jobs, mlflow

    for operation in service.operations.values():
        if operation.end is None:
            operation.status, operation.end = "Failed", now()
            operation.error = {"code": "OperationInterrupted", "message": RESTARTED}
    for key, resource in list(service.resources.items()):
        properties = resource.setdefault("properties", {})
        if resource["type"].lower().endswith("/jobs") and properties.get("status") not in jobs.TERMINAL:
            properties["status"] = "Failed"
            properties.setdefault("properties", {})["azureml.restartError"] = RESTARTED
        state = str(properties.get("provisioningState", "")).lower()
        if state == "deleting":
            del service.resources[key]
        elif state in SETTLING:
            properties["provisioningState"] = "Failed"
    for run_id, run in service.runs.items():
        if run.get("info", {}).get("status") not in mlflow.TERMINAL:
            mlflow.set_status(service, run_id, "FAILED")
