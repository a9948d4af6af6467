"""A local fake of the Azure ML services the adapter reaches: ARM, registry, MLflow, Monitor.

It speaks HTTPS on loopback and keeps resources in memory by their ARM path. Responses
follow the shapes of the Microsoft.MachineLearningServices REST API spec examples and
the azure-ai-ml recordings: `{"id", "name", "type", "properties", "systemData"}`
resources, ARM error bodies `{"error": {"code", "message"}}`, `Azure-AsyncOperation`
headers on long-running PUTs. Every request is recorded for the tests to assert on, and
`fail()` queues faults (404, 409, 429, 503 ...) for matching requests.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.contract.tls import TestCertificates

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
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers or {})


class FakeAzureML:
    """State and routing; `serve()` puts it on a loopback HTTPS port."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.monitor_series: dict[str, list[dict[str, Any]]] = {}  # metric name -> timeseries
        self.blob_sas: dict[tuple[str, str], str] = {}  # registry model (name, version) -> container SAS URL
        self.base_url = ""
        self._lock = threading.Lock()
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"^/registrymanagement/v1\.0/registries/(?P<registry>[^/]+)/discovery$"),
             self._discovery),
            ("POST", re.compile(r"^/mferp/managementfrontend(?P<reg>/subscriptions/.+/registries/[^/]+)/import$"),
             self._import),
            ("POST", re.compile(r"^/mferp/managementfrontend/subscriptions/.+/registries/[^/]+"
                                r"/datarefs/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$"), self._dataref),
            ("GET", re.compile(r"^/operations/(?P<op>[^/]+)$"), self._operation),
            ("GET", re.compile(r"^/operationResults/(?P<op>[^/]+)$"), self._operation_result),
            ("GET", re.compile(r"^/mlflow/v1\.0/.+/api/2\.0/mlflow/runs/get$"), self._mlflow_get),
            ("POST", re.compile(r"^/mlflow/v1\.0/.+/api/2\.0/mlflow/runs/search$"), self._mlflow_search),
            ("GET", re.compile(r"^(?P<resource>/subscriptions/.+)/providers/Microsoft\.Insights/metrics$"),
             self._monitor),
            ("POST", re.compile(r"^/batch/(?P<endpoint>[^/]+)/jobs$"), self._batch_invoke),
            ("GET", re.compile(r"^/mferp/managementfrontend(?P<path>/subscriptions/.+)$"), self._get),
            ("PUT", re.compile(r"^/mferp/managementfrontend(?P<path>/subscriptions/.+)$"), self._put),
            ("GET", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._get),
            ("PUT", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._put),
            ("DELETE", re.compile(r"^(?P<path>/subscriptions/.+)$"), self._delete),
        ]

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
        resource = self._resource(path, {"properties": properties, **extra})
        self.resources[path.lower()] = resource
        return resource

    def add_workspace(self, name: str, location: str = "eastus") -> dict[str, Any]:
        host = self.base_url.removeprefix("https://").rstrip("/")
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
        payload = json.loads(body) if body else None
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query, payload, headers))
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.pattern.search(parts.path):
                    fault.times -= 1
                    return Reply(fault.status, fault.body, fault.headers)
            for route_method, pattern, handler in self._routes:
                match = pattern.match(parts.path)
                if route_method == method and match:
                    try:
                        return handler(query=query, body=payload, **match.groupdict())
                    except (KeyError, TypeError, ValueError) as error:  # a request the fake cannot read
                        return arm_error(400, "FakeCannotRead", f"{method} {parts.path}: {error!r}")
        return arm_error(404, "NoRoute", f"the fake has no route for {method} {parts.path}")

    def _resource(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
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

    def _get(self, path: str, query: dict[str, str], body: Any) -> Reply:
        key = path.lower()
        if key in self.resources:
            return Reply(200, self.resources[key])
        children = [r for k, r in self.resources.items() if k.rsplit("/", 1)[0] == key]
        if children or key.endswith(("/versions", "/deployments", "/jobs")):
            return Reply(200, {"value": children})
        return arm_error(404, "ResourceNotFound", f"The resource {path} was not found.")

    def _put(self, path: str, query: dict[str, str], body: Any) -> Reply:
        resource = self._resource(path, body or {})
        resource.setdefault("properties", {})
        kind = resource["type"].lower()
        is_long_running = kind.endswith(("onlineendpoints", "deployments", "batchendpoints"))
        existed = path.lower() in self.resources
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
        return Reply(200 if existed else 201, resource, headers)

    def _delete(self, path: str, query: dict[str, str], body: Any) -> Reply:
        if self.resources.pop(path.lower(), None) is None:
            return Reply(204)
        return Reply(202, None, {"Location": f"{self.base_url}operationResults/{uuid.uuid4().hex}"})

    def _operation(self, op: str, query: dict[str, str], body: Any) -> Reply:
        """An `Azure-AsyncOperation` status: finished at once."""
        return Reply(200, {"status": "Succeeded"})

    def _operation_result(self, op: str, query: dict[str, str], body: Any) -> Reply:
        """A `Location` poll: finished at once, nothing to return."""
        return Reply(204)

    def _discovery(self, registry: str, query: dict[str, str], body: Any) -> Reply:
        key = self.registry_id(registry).lower()
        if key not in self.resources:
            return arm_error(404, "RegistryNotFound", f"Registry {registry} not found.")
        return Reply(
            200,
            {
                "registryName": registry,
                "primaryRegion": "eastus",
                "regions": ["eastus"],
                "subscriptionId": SUBSCRIPTION,
                "resourceGroup": REGISTRY_RESOURCE_GROUP,
                "primaryRegionResourceProviderUri": self.base_url,
                "registryFqdns": {"eastus": {"primary": self.base_url}},
            },
        )

    def _import(self, reg: str, query: dict[str, str], body: Any) -> Reply:
        request = body["properties"]
        name, version = request["destinationName"], request["destinationVersion"]
        self.add(f"{reg}/models/{name}", {"description": "", "tags": {}, "properties": {}, "latestVersion": version})
        self.add(
            f"{reg}/models/{name}/versions/{version}",
            {"description": "", "tags": {}, "properties": {}, "flavors": {}, "modelType": "custom_model",
             "modelUri": request["sourceAssetId"], "isAnonymous": False, "isArchived": False,
             "provisioningState": "Succeeded"},
        )
        return Reply(202, None, {"Location": f"{self.base_url}operationResults/{uuid.uuid4().hex}", "Retry-After": "0"})

    def _dataref(self, name: str, version: str, query: dict[str, str], body: Any) -> Reply:
        """Where a registry asset's files are: a SAS URL of their container."""
        sas = self.blob_sas.get((name, version))
        if sas is None:
            return arm_error(404, "ResourceNotFound", f"no blob reference for {name}:{version}")
        return Reply(
            200,
            {"blobReferenceForConsumption": {"blobUri": body["blobUri"], "storageAccountArmId": None,
                                             "credential": {"credentialType": "SAS", "sasUri": sas}}},
        )

    def _mlflow_get(self, query: dict[str, str], body: Any) -> Reply:
        run = self.runs.get(query.get("run_id", ""))
        if run is None:
            return Reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"})
        return Reply(200, {"run": run})

    def _mlflow_search(self, query: dict[str, str], body: Any) -> Reply:
        match = re.search(r"tags\.mlflow\.parentRunId\s*=\s*'([^']+)'", body.get("filter", ""))
        parent = match.group(1) if match else None
        runs = [r for r in self.runs.values() if _tag(r, "mlflow.parentRunId") == parent]
        return Reply(200, {"runs": runs} if runs else {})

    def _monitor(self, resource: str, query: dict[str, str], body: Any) -> Reply:
        names = query.get("metricnames", "").split(",")
        value = []
        for name in names:
            value.append(
                {
                    "id": f"{resource}/providers/Microsoft.Insights/metrics/{name}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": name, "localizedValue": name},
                    "unit": "Count" if name == "RequestsPerMinute" else "Milliseconds",
                    "timeseries": self.monitor_series.get(name, []),
                    "errorCode": "Success",
                }
            )
        return Reply(
            200,
            {"cost": 0, "timespan": query.get("timespan", ""), "interval": query.get("interval", "PT1M"),
             "value": value, "namespace": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
             "resourceregion": "eastus"},
        )

    def _batch_invoke(self, endpoint: str, query: dict[str, str], body: Any) -> Reply:
        """Start a job, which (as in Azure ML) the endpoint's workspace then lists among its jobs."""
        name = body.get("properties", {}).get("name") or uuid.uuid4().hex
        properties = {"status": "NotStarted", **body.get("properties", {})}
        for key in list(self.resources):
            workspace, _, found = key.partition("/batchendpoints/")
            if found == endpoint.lower():
                self.add(f"{workspace}/jobs/{name}", {"jobType": "Pipeline", "status": "NotStarted",
                                                      "experimentName": endpoint, "tags": {}, "properties": {}})
        return Reply(200, {"id": name, "name": name, "properties": properties})


def _tag(run: dict[str, Any], key: str) -> str | None:
    for tag in run.get("data", {}).get("tags", []):
        if tag["key"] == key:
            return tag["value"]
    return None


def _handler_for(fake: FakeAzureML) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = fake.handle(self.command, self.path, body, dict(self.headers.items()))
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve  # noqa: N815 - the base class's names

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the recorded requests are what the tests look at."""

    return Handler


@contextmanager
def serving(fake: FakeAzureML, certificates: TestCertificates) -> Iterator[FakeAzureML]:
    """Serve `fake` over HTTPS on a free loopback port until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.base_url = f"https://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, name="fake-azureml", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
