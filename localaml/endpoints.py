"""Online endpoints and deployments: Azure ML's long-running operations, traffic rules and refusals.

Sources, named again next to each behaviour:

- SDK recording `Azure/azure-sdk-assets`, `python/sdk/ml/azure-ai-ml/tests/recordings/online_services/
  e2etests/test_online_endpoint.pyTestOnlineEndpointtest_online_endpoint_e2e.json` ("the endpoint
  recording"): a PUT of a new endpoint answers 201 with the resource `Creating`, `scoringUri` null,
  `properties.AzureAsyncOperationUri`, headers `Azure-AsyncOperation` (`.../locations/<region>/
  mfeOperationsStatus/oeidp:<workspace id>:<uuid>`), `Location` (the resource) and
  `x-ms-async-operation-timeout: PT30M`; the operation answers `{"id", "name", "startTime", "endTime":
  "0001-01-01T00:00:00+00:00", "percentComplete": 0.0, "status": "Updating"}` until it ends.
- REST spec `Azure/azure-rest-api-specs`, `specification/machinelearningservices/resource-manager/
  Microsoft.MachineLearningServices/stable/2024-10-01/` (`mfe.json`, `examples/Workspace/OnlineDeployment/
  delete.json`): traffic "values need to sum to 100", mirror traffic "values need to sum to utmost 50",
  deployment states Creating, Deleting, Scaling, Updating, Succeeded, Failed, Canceled; a DELETE answers
  202 with `Location`.
- Docs "Perform safe rollout of new deployments" (how-to-safely-rollout-online-endpoints): mirroring goes
  to a deployment without live traffic, at most 50%; the mirror's answers are never returned.
- Docs "Troubleshoot online endpoint deployment and scoring" (how-to-troubleshoot-online-endpoints),
  HTTP status codes of scoring: 401 bad key, 404 "The endpoint doesn't have any valid deployment with
  positive weight.", 424 model error with `ms-azureml-model-error-statuscode` / `-reason`, 500
  infrastructure failing, 502 the model's code failed, 503 not available.
- Azure's refusal of a non-MLflow deployment without scoring code: `(BadRequest) The request is invalid.`
  with detail `(MissingDriverProgram) Could not find driver program in the request.`
  (Azure/azure-sdk-for-python#35387, Azure/azure-cli-extensions#5583); without an environment: detail
  `'Environment Id' must not be empty.` (`ArgumentNullOrEmpty`, Azure/azure-sdk-for-python#30741).
- A model that does not exist: 404 "Could not find asset with ID: ..." (the asset service's message, asserted
  in azure-sdk-for-python `sdk/ai/azure-ai-projects/tests/test_datasets_async.py`).

No public source gives Azure's exact words for: a change while the endpoint is busy (answered 409
`Conflict`, as ARM answers a write to a resource with an operation in progress), traffic naming a
deployment that does not exist, and deleting a deployment that still has traffic (400, following the
safe-rollout docs: set its traffic to 0 first). Those messages are the local service's own.

States advance by the clock on timer threads (`OnlineEndpoints.*_seconds`), so the SDK's and the
app's polls see `Creating` / `Updating` / `Deleting` for a while, then the outcome. Local-only fault
controls (not Azure's) are `OnlineEndpoints.set_faults` / `scale` and `POST /localaml/<ARM id>/faults`.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from localaml import collector, scoring
from localaml.errors import AzureError, Reply
from localaml.service import Hooks, Operation, now

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

ENDPOINT_TYPE = "workspaces/onlineEndpoints"
DEPLOYMENT_TYPE = "workspaces/onlineEndpoints/deployments"
ENDPOINT_PATH = re.compile(r"/workspaces/(?P<workspace>[^/]+)/onlineEndpoints/(?P<endpoint>[^/]+)", re.IGNORECASE)
REGISTRY_MODEL = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<v>[^/]+)$")
BUSY = frozenset({"Creating", "Updating", "Deleting", "Scaling"})
ENDS = frozenset({"Succeeded", "Failed", "Canceled"})
NEVER = "Never"  # a provisioning fault: the operation stays in progress for good
MAX_MIRROR_PERCENT = 50
MAX_ADDED_LATENCY_MS = 10_000  # Azure's default request_timeout_ms is 5000 (OnlineRequestSettings): beyond it is moot
Resource = dict[str, Any]


@dataclass
class Faults:
    """Local-only controls of one endpoint or deployment (none of them is Azure's)."""

    provisioning: str = "Succeeded"  # how its next create / update ends: Succeeded, Failed, Canceled or Never
    reason: str = ""  # the error message of a Failed or Canceled provisioning
    error_rate: float = 0.0  # share of scoring requests that fail
    error_status: int = 500  # 500 (infrastructure) or 424 (the model's code answered an error)
    latency_ms: float = 0.0  # added to each answer: a slower deployment, or a platform spike when set on all
    flip_rate: float = 0.0  # share of rows whose predicted class is changed (answers differently on purpose)


@dataclass
class Scored:
    """One scoring request a deployment answered, live or mirrored."""

    deployment: str
    status: int
    latency_ms: float
    mirrored: bool


class OnlineEndpoints:
    """The endpoints feature of one service: timings, operations, loaded models, keys, faults."""

    def __init__(self, service: LocalAzureML) -> None:
        self.service = service
        self.endpoint_create_seconds = 1.0
        self.endpoint_update_seconds = 1.0
        self.deployment_create_seconds = 2.0
        self.delete_seconds = 1.0
        self.faults: dict[str, Faults] = {}  # by lower-case ARM path
        self.sessions: dict[str, tuple[Resource, Any]] = {}  # deployment key -> (its resource, ONNX session)
        self.serving: dict[str, tuple[Resource, dict[str, int], dict[str, int]]] = {}  # routes while Updating
        self.keys: dict[str, tuple[str, str]] = {}
        self.scored: list[Scored] = []
        self.timers: list[threading.Timer] = []
        self.rng = random.Random()  # tests seed it to make routing and mirroring repeatable

    def reset(self) -> None:
        """Forget everything (tests); pending timers are cancelled."""
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        for store in (self.faults, self.sessions, self.serving, self.keys):
            store.clear()
        self.scored.clear()

    # -- local-only fault controls ----------------------------------------------------------

    def set_faults(self, path: str, **changes: Any) -> Faults:
        """Local-only: change the faults of the endpoint or deployment at ARM `path` (it may not exist yet)."""
        added, flipped = changes.get("latency_ms", 0.0), changes.get("flip_rate", 0.0)
        if isinstance(added, bool) or not isinstance(added, int | float) or not 0 <= added <= MAX_ADDED_LATENCY_MS:
            raise AzureError(400, "BadRequest", f"latencyMs must be a number from 0 to {MAX_ADDED_LATENCY_MS}")
        if isinstance(flipped, bool) or not isinstance(flipped, int | float) or not 0 <= flipped <= 1:
            raise AzureError(400, "BadRequest", "flipRate must be a number from 0 to 1")
        faults = self.faults.setdefault(path.lower(), Faults())
        for name, value in changes.items():
            if not hasattr(faults, name):
                raise AzureError(400, "BadRequest", f"unknown fault {name!r}")
            setattr(faults, name, value)
        if faults.provisioning not in {*ENDS, NEVER}:
            raise AzureError(400, "BadRequest", f"provisioning must be one of {sorted({*ENDS, NEVER})}")
        if not 0 <= float(faults.error_rate) <= 1 or faults.error_status not in (424, 500, 502, 503):
            raise AzureError(400, "BadRequest", "errorRate must be from 0 to 1 and errorStatus 424, 500, 502 or 503")
        return faults

    def scale(self, path: str, seconds: float | None = None) -> None:
        """Local-only: the deployment at `path` is `Scaling` (for `seconds`, or until scaled again with 0)."""
        with self.service.lock:
            resource = self.service.resources.get(path.lower())
            if resource is None:
                raise AzureError(404, "ResourceNotFound", f"The resource {path} was not found.")
            if seconds == 0:
                resource["properties"]["provisioningState"] = "Succeeded"
                return
            resource["properties"]["provisioningState"] = "Scaling"
            if seconds is not None:
                self.later(seconds, lambda: self._settle(resource, "Scaling", "Succeeded"))

    # -- long-running operations --------------------------------------------------------------

    def later(self, seconds: float, action: Any) -> None:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def start(self, resource: Resource) -> Operation:
        """An operation on `resource`, polled through the service's `Azure-AsyncOperation` route; it reads
        `Updating` until it ends, as in the endpoint recording."""
        return self.service.start_operation(resource["id"], status="Updating")

    def headers(self, operation: Operation, resource: Resource, *, delete: bool = False) -> dict[str, str]:
        """`Azure-AsyncOperation`, `Location` (the resource; for a DELETE its operation result) and the timeout."""
        status = self.service.operation_url(operation.id)
        location = (status.replace("/mfeOperationsStatus/", "/mfeOperationResults/") if delete
                    else f"{self.service.base_url}{resource['id'].lstrip('/')}")
        return {"Azure-AsyncOperation": status, "Location": location, "x-ms-async-operation-timeout": "PT30M"}

    @staticmethod
    def finish(operation: Operation, status: str, reason: str = "") -> None:
        operation.status, operation.end = status, now()
        if status != "Succeeded":
            code = "OperationCanceled" if status == "Canceled" else "DeploymentFailed"
            operation.error = {"code": code, "message": reason or f"The operation ended {status}."}

    def outcome(self, key: str) -> tuple[str, str]:
        """How the next provisioning of `key` ends (its fault, Succeeded by default) and why."""
        faults = self.faults.get(key, Faults())
        return faults.provisioning, faults.reason

    def _settle(self, resource: Resource, while_state: str, state: str) -> None:
        with self.service.lock:
            if resource["properties"].get("provisioningState") == while_state and self._current(resource):
                resource["properties"]["provisioningState"] = state

    def _current(self, resource: Resource) -> bool:
        """Whether `resource` is still the one the service holds (a test may have replaced it)."""
        return self.service.resources.get(resource["id"].lower()) is resource


_FEATURES: weakref.WeakKeyDictionary[LocalAzureML, OnlineEndpoints] = weakref.WeakKeyDictionary()


def online(service: LocalAzureML) -> OnlineEndpoints:
    """The endpoints feature of `service` (installed by `install`)."""
    return _FEATURES[service]


def install(service: LocalAzureML) -> None:
    _FEATURES[service] = OnlineEndpoints(service)
    service.on(ENDPOINT_TYPE, Hooks(put=put_endpoint, delete=delete_endpoint))
    service.on(DEPLOYMENT_TYPE, Hooks(put=put_deployment, delete=delete_deployment))
    operations = r"^/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+"
    service.route("GET", operations + r"/mfeOperationResults/(?P<op>[^/]+)$",
                  lambda **kw: operation_result(service, **kw))
    service.route("POST", r"^(?P<endpoint>/subscriptions/.+/onlineEndpoints/[^/]+)/listKeys$",
                  lambda **kw: list_keys(service, **kw))
    service.route("POST", r"^(?P<endpoint>/subscriptions/.+/onlineEndpoints/[^/]+)/regenerateKeys$",
                  lambda **kw: regenerate_keys(service, **kw))
    service.route("POST", r"^(?P<endpoint>/subscriptions/.+/onlineEndpoints/[^/]+)/token$",
                  lambda **kw: get_token(service, **kw))
    service.route("POST", r"^/localaml(?P<path>/subscriptions/.+/onlineEndpoints/[^/]+(?:/deployments/[^/]+)?)"
                  r"/faults$", lambda **kw: post_faults(service, **kw))
    service.route("POST", r"^/online/(?P<workspace>[^/]+)/(?P<endpoint>[^/]+)/score$",
                  lambda **kw: scoring.score(service, **kw), anonymous=True)


def scoring_uri(service: LocalAzureML, workspace: str, endpoint: str) -> str:
    """Where an endpoint scores (Azure's `https://<endpoint>.<region>.inference.ml.azure.com/score`)."""
    return f"{service.base_url}online/{workspace}/{endpoint}/score"


# -- resources --------------------------------------------------------------------------------


def _workspace_key(arm_id: str) -> str:
    return arm_id.lower().split("/onlineendpoints/", 1)[0]


def _names(arm_id: str) -> tuple[str, str]:
    match = ENDPOINT_PATH.search(arm_id)
    if match is None:
        raise AzureError(400, "BadRequest", f"{arm_id} is not an online endpoint")
    return match["workspace"], match["endpoint"]


def deployments_of(service: LocalAzureML, endpoint_key: str) -> dict[str, Resource]:
    """The endpoint's deployments by lower-case name."""
    prefix = endpoint_key.lower() + "/deployments/"
    return {key[len(prefix):]: r for key, r in service.resources.items() if key.startswith(prefix)
            and "/" not in key[len(prefix):]}


def _state(resource: Resource) -> str:
    return str(resource["properties"].get("provisioningState") or "Succeeded")


def _refuse_while_busy(resource: Resource, what: str) -> None:
    """409 while an operation runs on the resource (no public source words it; ARM's usual answer)."""
    state = _state(resource)
    if state in BUSY:
        raise AzureError(
            409, "Conflict",
            f"{what} {resource['name']} is {state}: another operation is in progress on it; retry when it has ended.",
        )


def bad_request(detail_code: str, message: str, *, target: str | None = None) -> AzureError:
    """Azure ML's refusal of a request it cannot take: `(BadRequest) The request is invalid.` with the
    reason nested (the shape of Azure/azure-sdk-for-python#35387)."""
    detail = {"code": detail_code, "message": message, "details": []}
    if target:
        detail["target"] = target
    return AzureError(400, "BadRequest", "The request is invalid.", details=[detail])


# -- endpoints ----------------------------------------------------------------------------------


def _weights(properties: dict[str, Any], name: str) -> dict[str, int]:
    weights = properties.get(name) or {}
    if not isinstance(weights, dict):
        raise bad_request("InvalidTraffic", f"{name} must map deployment names to percentages", target=name)
    return dict(weights)


def check_traffic(deployments: dict[str, Resource], traffic: dict[str, int], mirror: dict[str, int]) -> None:
    """The REST spec's rules (traffic sums to 100, or 0 with no traffic; mirror to at most 50) and the
    safe-rollout docs' (mirror only to a deployment without live traffic); deployments must exist."""
    for name, weights in (("traffic", traffic), ("mirrorTraffic", mirror)):
        for deployment, percent in weights.items():
            if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
                raise bad_request("InvalidTraffic", f"{name} of {deployment} must be an integer from 0 to 100",
                                  target=name)
            if deployment.lower() not in deployments:
                raise bad_request("DeploymentNotFound",
                                  f"{name} names deployment {deployment}, which does not exist in the endpoint",
                                  target=name)
    if sum(traffic.values()) not in (0, 100):
        raise bad_request("InvalidTraffic", f"Traffic values need to sum to 100, got {sum(traffic.values())}.",
                          target="traffic")
    if sum(mirror.values()) > MAX_MIRROR_PERCENT:
        raise bad_request("InvalidMirrorTraffic",
                          f"Mirror traffic values need to sum to utmost {MAX_MIRROR_PERCENT}, "
                          f"got {sum(mirror.values())}.", target="mirrorTraffic")
    both = sorted(name for name, percent in mirror.items() if percent and traffic.get(name))
    if both:
        raise bad_request("InvalidMirrorTraffic",
                          f"A deployment can take live traffic or mirrored traffic, not both: {', '.join(both)}.",
                          target="mirrorTraffic")


def put_endpoint(service: LocalAzureML, path: str, resource: Resource, existing: Resource | None) -> Reply:
    """Create (`Creating`, 201) or update (`Updating`, 200) an endpoint, as the endpoint recording shows."""
    feature, key = online(service), path.lower()
    properties = resource["properties"]
    if existing is not None:
        _refuse_while_busy(existing, "Online endpoint")
    traffic, mirror = _weights(properties, "traffic"), _weights(properties, "mirrorTraffic")
    check_traffic(deployments_of(service, key), traffic, mirror)
    workspace = service.resources.get(_workspace_key(path), {})
    resource.setdefault("location", workspace.get("location", "eastus"))
    resource.setdefault("kind", "Managed")
    resource.setdefault("tags", {})
    properties.update(traffic=traffic, mirrorTraffic=mirror)
    properties.setdefault("authMode", "Key")
    properties.setdefault("publicNetworkAccess", "Enabled")
    operation = feature.start(resource)
    properties["properties"] = {**(properties.get("properties") or {}),
                                "AzureAsyncOperationUri": service.operation_url(operation.id)}
    if existing is None:
        properties.update(provisioningState="Creating", scoringUri=None, swaggerUri=None)
    else:
        old = existing["properties"]
        properties.update(provisioningState="Updating", scoringUri=old.get("scoringUri"),
                          swaggerUri=old.get("swaggerUri"))
        # The split in force keeps serving until the update is applied.
        feature.serving[key] = (resource, dict(old.get("traffic") or {}), dict(old.get("mirrorTraffic") or {}))
    service.resources[key] = resource
    outcome, reason = feature.outcome(key)
    if outcome != NEVER:
        seconds = feature.endpoint_create_seconds if existing is None else feature.endpoint_update_seconds
        feature.later(seconds, lambda: _endpoint_done(service, resource, operation, outcome, reason))
    return Reply(201 if existing is None else 200, resource, feature.headers(operation, resource))


def _endpoint_done(
    service: LocalAzureML, resource: Resource, operation: Operation, outcome: str, reason: str
) -> None:
    feature = online(service)
    with service.lock:
        feature.finish(operation, outcome, reason)
        if not feature._current(resource):
            return
        properties = resource["properties"]
        properties["provisioningState"] = outcome
        feature.serving.pop(resource["id"].lower(), None)
        if outcome == "Succeeded" and not properties.get("scoringUri"):
            workspace, endpoint = _names(resource["id"])
            properties["scoringUri"] = scoring_uri(service, workspace, endpoint)
            properties["swaggerUri"] = properties["scoringUri"].removesuffix("/score") + "/swagger.json"


def delete_endpoint(service: LocalAzureML, path: str, resource: Resource, existing: Resource | None) -> Reply:
    """`Deleting`, then gone with its deployments (202 with `Location`, REST spec delete example)."""
    if _state(resource) != "Deleting":
        _refuse_while_busy(resource, "Online endpoint")
    return _delete_later(service, path, resource)


def list_keys(
    service: LocalAzureML, endpoint: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """The endpoint's keys (`EndpointAuthKeys`: primaryKey, secondaryKey), made with the endpoint."""
    if endpoint.lower() not in service.resources:
        raise AzureError(404, "ResourceNotFound", f"The resource {endpoint} was not found.")
    primary, secondary = endpoint_keys(service, endpoint)
    return Reply(200, {"primaryKey": primary, "secondaryKey": secondary})


def regenerate_keys(
    service: LocalAzureML, endpoint: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """A new primary or secondary key (`RegenerateEndpointKeysRequest`: keyType, keyValue), as a long-running
    operation: 202 with `Location` and `Retry-After` (generated client `OnlineEndpointsOperations.
    _regenerate_keys_initial`: 200 or 202).

    azure-ai-ml sends the key's current value as `keyValue` (`_regenerate_online_keys`), and its e2e test
    expects the key changed and the other one kept (`online_services/e2etests/test_online_endpoint.py::
    test_online_endpoint_e2e`): a `keyValue` other than the current key becomes the key, else a new one is made.
    """
    resource = _endpoint_using(service, endpoint, "Key", "keys", target="keyType")
    request = body if isinstance(body, dict) else {}
    kind = str(request.get("keyType", ""))
    if kind.lower() not in ("primary", "secondary"):
        raise bad_request("InvalidKeyType", "keyType must be Primary or Secondary.", target="keyType")
    primary, secondary = endpoint_keys(service, endpoint)
    current = primary if kind.lower() == "primary" else secondary
    value = request.get("keyValue")
    new = value if isinstance(value, str) and value and value != current else uuid.uuid4().hex
    online(service).keys[endpoint.lower()] = (new, secondary) if kind.lower() == "primary" else (primary, new)
    operation = service.start_operation(resource["id"])
    result = service.operation_url(operation.id, query).replace("/mfeOperationsStatus/", "/mfeOperationResults/")
    return Reply(202, None, {"Location": result, "Retry-After": "0"})


def _endpoint_using(service: LocalAzureML, endpoint: str, mode: str, what: str, target: str) -> Resource:
    """The endpoint at ARM path `endpoint` when its authMode is `mode` (Key is the default); 404 or 400 otherwise."""
    resource = service.resources.get(endpoint.lower())
    if resource is None:
        raise AzureError(404, "ResourceNotFound", f"The resource {endpoint} was not found.")
    if str(resource["properties"].get("authMode", "Key")).lower() != mode.lower():
        raise bad_request("InvalidAuthMode", f"Endpoint {resource['name']} does not use {what} (authMode "
                          f"{resource['properties'].get('authMode')}).", target=target)
    return resource


def get_token(
    service: LocalAzureML, endpoint: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """An `aml_token` endpoint's scoring token (REST spec definition `EndpointAuthToken`: accessToken,
    expiryTimeUtc, refreshAfterTimeUtc, tokenType; what azure-ai-ml's `get_keys` reads for that auth mode,
    SDK e2e test `test_online_endpoint.py::test_online_endpoint_e2e`). Refused for another auth mode (no public
    source words Azure's answer)."""
    import time

    from localaml.credential import issue

    _endpoint_using(service, endpoint, "AMLToken", "AML tokens", target="authMode")
    lifetime = 3600
    issued = int(time.time())
    return Reply(200, {"accessToken": issue(service.token_secret, "https://ml.azure.com", lifetime),
                       "expiryTimeUtc": issued + lifetime, "refreshAfterTimeUtc": issued + lifetime // 2,
                       "tokenType": "Bearer"})


def endpoint_keys(service: LocalAzureML, endpoint: str) -> tuple[str, str]:
    return online(service).keys.setdefault(endpoint.lower(), (uuid.uuid4().hex, uuid.uuid4().hex))


# -- deployments --------------------------------------------------------------------------------


def find_model(service: LocalAzureML, reference: object) -> Resource:
    """The model version a deployment names: an ARM id or `azureml://registries/<r>/models/<n>/versions/<v>`;
    404 "Could not find asset with ID" otherwise."""
    key = ""
    if isinstance(reference, str):
        registry = REGISTRY_MODEL.match(reference)
        if registry:
            key = f"{service.registry_id(registry['registry'])}/models/{registry['name']}/versions/{registry['v']}"
        elif reference.startswith("/subscriptions/"):
            key = reference
    model = service.resources.get(key.lower()) if key else None
    if model is None or "/versions/" not in key.lower():
        raise AzureError(404, "UserError", f"Could not find asset with ID: {reference}",
                         details=[{"code": "NotFound", "message": f"Could not find asset with ID: {reference}"}])
    return model


def _check_runtime(properties: dict[str, Any], model: Resource) -> None:
    """A model that is not an MLflow model needs scoring code and an environment (see the module sources)."""
    if str(model["properties"].get("modelType", "")).lower() == "mlflow_model":
        return
    code = properties.get("codeConfiguration") or {}
    if not code.get("scoringScript"):
        raise bad_request("MissingDriverProgram", "Could not find driver program in the request.")
    if not properties.get("environmentId"):
        raise bad_request("ArgumentNullOrEmpty", "'Environment Id' must not be empty.", target="environmentId")


def put_deployment(service: LocalAzureML, path: str, resource: Resource, existing: Resource | None) -> Reply:
    """Create (`Creating`, 201) or update (`Updating`, 200) a deployment; its model really loads."""
    feature, key = online(service), path.lower()
    endpoint_key = key.rsplit("/deployments/", 1)[0]
    endpoint = service.resources.get(endpoint_key)
    if endpoint is None:
        raise AzureError(404, "ResourceNotFound", f"The resource {path.rsplit('/deployments/', 1)[0]} was not found.")
    _refuse_while_busy(endpoint, "Online endpoint")
    if existing is not None:
        _refuse_while_busy(existing, "Online deployment")
    properties = resource["properties"]
    model = find_model(service, properties.get("model"))
    _check_runtime(properties, model)
    collector.check(properties)
    resource.setdefault("location", endpoint.get("location", "eastus"))
    resource.setdefault("kind", "Managed")
    resource.setdefault("tags", {})
    resource.setdefault("sku", {"name": "Default", "tier": "Standard", "capacity": 1})
    properties.setdefault("endpointComputeType", "Managed")
    properties.setdefault("scaleSettings", {"scaleType": "Default"})
    properties["provisioningState"] = "Creating" if existing is None else "Updating"
    service.resources[key] = resource
    operation = feature.start(resource)
    outcome, reason = feature.outcome(key)
    if outcome != NEVER:
        feature.later(feature.deployment_create_seconds,
                      lambda: _deployment_done(service, resource, operation, model, outcome, reason))
    return Reply(201 if existing is None else 200, resource, feature.headers(operation, resource))


def _deployment_done(
    service: LocalAzureML, resource: Resource, operation: Operation, model: Resource, outcome: str, reason: str
) -> None:
    """Load the model (off the service's lock: it reads storage), then settle the deployment."""
    session, failure = None, ""
    if outcome == "Succeeded":
        try:
            session = scoring.load_model(service, model)
        except Exception as error:  # any reason the model cannot serve fails the deployment, as in Azure
            outcome, failure = "Failed", f"The model could not be loaded: {error}"
    feature = online(service)
    with service.lock:
        feature.finish(operation, outcome, failure or reason)
        if not feature._current(resource):
            return
        resource["properties"]["provisioningState"] = outcome
        if session is not None:
            feature.sessions[resource["id"].lower()] = (resource, session)


def delete_deployment(service: LocalAzureML, path: str, resource: Resource, existing: Resource | None) -> Reply:
    """`Deleting`, then gone (202 with `Location`, REST spec `OnlineDeployment/delete.json`); refused while
    the deployment has live or mirror traffic (safe-rollout docs: set it to 0 first) or the endpoint is busy."""
    endpoint = service.resources.get(path.lower().rsplit("/deployments/", 1)[0])
    if _state(resource) != "Deleting" and endpoint is not None:
        _refuse_while_busy(endpoint, "Online endpoint")
        name = resource["name"].lower()
        for field_name in ("traffic", "mirrorTraffic"):
            weights = {n.lower(): w for n, w in (endpoint["properties"].get(field_name) or {}).items()}
            if weights.get(name):
                raise bad_request(
                    "DeploymentHasTraffic",
                    f"Deployment {resource['name']} has {weights[name]}% {field_name} on endpoint {endpoint['name']};"
                    f" set it to 0 before deleting the deployment.", target=field_name,
                )
    return _delete_later(service, path, resource)


def _delete_later(service: LocalAzureML, path: str, resource: Resource) -> Reply:
    """`Deleting` now; after `delete_seconds` gone, with what lies under it (an endpoint's deployments)."""
    feature, prefix = online(service), path.lower()
    resource["properties"]["provisioningState"] = "Deleting"
    operation = feature.start(resource)

    def gone() -> None:
        with service.lock:
            feature.finish(operation, "Succeeded")
            if feature._current(resource):
                for key in [k for k in service.resources if k == prefix or k.startswith(prefix + "/")]:
                    del service.resources[key]
                    feature.sessions.pop(key, None)

    feature.later(feature.delete_seconds, gone)
    return Reply(202, None, feature.headers(operation, resource, delete=True))


# -- operation polls and local-only controls ------------------------------------------------------


def operation_result(service: LocalAzureML, op: str, query: dict[str, str], body: Any,
                     headers: dict[str, str]) -> Reply:
    """A DELETE's `Location` poll (`mfeOperationResults`, recorded in test_batch_endpoint_create.json):
    202 while the operation runs, then 204, or its error (ARM's asynchronous operation contract)."""
    operation = service.operations.get(op)
    if operation is not None and operation.end is None:
        return Reply(202, None, {"Location": service.operation_url(op).replace("/mfeOperationsStatus/",
                                                                              "/mfeOperationResults/"),
                                 "Retry-After": "1"})
    if operation is not None and operation.error:
        return Reply(400, {"error": operation.error})
    return Reply(204)


def post_faults(service: LocalAzureML, path: str, query: dict[str, str], body: Any,
                headers: dict[str, str]) -> Reply:
    """Local-only (no Azure API): `{"provisioning": "Never"|"Failed"|"Canceled"|"Succeeded", "reason": str,
    "errorRate": 0..1, "errorStatus": 500|424|502|503, "latencyMs": 0..10000, "flipRate": 0..1,
    "scaling": seconds | null}` for an endpoint or deployment."""
    request = dict(body or {})
    feature = online(service)
    if "scaling" in request:
        feature.scale(path, request.pop("scaling"))
    names = {"provisioning": "provisioning", "reason": "reason", "errorRate": "error_rate",
             "errorStatus": "error_status", "latencyMs": "latency_ms", "flipRate": "flip_rate"}
    unknown = sorted(set(request) - set(names))
    if unknown:
        raise AzureError(400, "BadRequest", f"unknown faults {unknown}; known: {sorted(names)} and scaling")
    faults = feature.set_faults(path, **{names[k]: v for k, v in request.items()})
    return Reply(200, {"provisioning": faults.provisioning, "reason": faults.reason,
                       "errorRate": faults.error_rate, "errorStatus": faults.error_status,
                       "latencyMs": faults.latency_ms, "flipRate": faults.flip_rate})


def provisioning_state(service: LocalAzureML, path: str) -> str:
    """The resource's provisioning state now, `Gone` once it is deleted (for tests to wait on)."""
    with service.lock:
        resource = service.resources.get(path.lower())
        return "Gone" if resource is None else _state(resource)
