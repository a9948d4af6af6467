"""What an online deployment of the local service runs: an ONNX Runtime session and its input contract.

The contract is the one of the app's scoring code and of the old in-process sandbox
(`shared/adapters/sandbox/scoring.py`): a request `{"inputs": [[numbers...], ...]}` is answered
`{"predictions": [...], "probabilities": [[...], ...]}` (probabilities for classifiers only).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from localaml import collector
from localaml.datastores import Location, locate, read_files
from localaml.errors import Reply, arm_error

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime

    from localaml.endpoints import OnlineEndpoints
    from localaml.service import LocalAzureML

Resource = dict[str, Any]

MAX_ROWS = 10_000


class BadInput(ValueError):
    """The request cannot be scored as sent (HTTP 400 from the endpoint)."""


class ModelLoadError(RuntimeError):
    """The model's files are not a model ONNX Runtime can load: the deployment ends Failed."""


class SessionCache:
    """ONNX sessions by the sha256 of the model file: model versions are immutable, so never stale."""

    def __init__(self) -> None:
        self._sessions: dict[str, onnxruntime.InferenceSession] = {}
        self._lock = threading.Lock()

    def load(self, data: bytes) -> onnxruntime.InferenceSession:
        """The session of this model file, made on first use; ModelLoadError when it is not a model."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            session = self._sessions.get(digest)
            if session is None:
                session = self._sessions[digest] = new_session(data)
            return session


SESSIONS = SessionCache()


def new_session(data: bytes) -> onnxruntime.InferenceSession:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Local models are tiny: one thread per request beats a pool fighting over two cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for a bad file
        raise ModelLoadError(f"ONNX Runtime could not load the model: {error}") from error


def onnx_file(files: dict[str, bytes]) -> bytes:
    """The model file among a model version's files: its only `.onnx` file, or `model.onnx`."""
    candidates = {name: data for name, data in files.items() if name.lower().endswith(".onnx")}
    if not candidates:
        raise ModelLoadError(f"the model has no .onnx file (files: {sorted(files) or 'none'})")
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    for name, data in candidates.items():
        if name.rsplit("/", 1)[-1].lower() == "model.onnx":
            return data
    raise ModelLoadError(f"the model has several .onnx files and none is model.onnx: {sorted(candidates)}")


def as_rows(request: object) -> np.ndarray:
    """A float32 matrix from `{"inputs": [[numbers...], ...]}`; BadInput saying what is wrong."""
    import numpy as np

    if not isinstance(request, dict) or "inputs" not in request:
        raise BadInput('the body must be {"inputs": [[numbers...], ...]}')
    rows = request["inputs"]
    if not isinstance(rows, list) or not rows:
        raise BadInput("'inputs' must be a non-empty list of rows")
    if len(rows) > MAX_ROWS:
        raise BadInput(f"'inputs' has {len(rows)} rows; at most {MAX_ROWS} per request")
    width = len(rows[0]) if isinstance(rows[0], list) else -1
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width or not width:
            raise BadInput(f"inputs[{index}] must be a list of {max(width, 1)}+ numbers like inputs[0]")
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in row):
            raise BadInput(f"inputs[{index}] holds a value that is not a number")
    return np.asarray(rows, dtype=np.float32)


def predict(session: onnxruntime.InferenceSession, rows: np.ndarray) -> dict[str, list[Any]]:
    """`predictions` (the first output) and, for classifiers, `probabilities` per class."""
    feed = session.get_inputs()[0]
    width = feed.shape[1] if len(feed.shape) == 2 else None
    if isinstance(width, int) and rows.shape[1] != width:
        raise BadInput(f"the model expects {width} features per row, got {rows.shape[1]}")
    outputs = session.run(None, {feed.name: rows})
    result = {"predictions": outputs[0].tolist()}
    if len(outputs) > 1 and getattr(outputs[1], "ndim", 0) == 2:
        result["probabilities"] = outputs[1].tolist()
    return result


# -- the scoring route: keys, routing by traffic, mirroring, faults, measuring --------------------

DEPLOYMENT_HEADER = "azureml-model-deployment"
SERVING_STATES = frozenset({"Succeeded", "Scaling", "Updating"})  # instances up; Updating rolls them
MODEL_REFERENCE = re.compile(r"workspaces/(?P<workspace>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")


def model_location(service: LocalAzureML, model: Resource, depth: int = 0) -> Location:
    """Where a model version's files are: its `modelUri` (a datastore URI, a blob URL of the service's
    storage account, as registry versions have, or another model version's asset id)."""
    uri = str(model["properties"].get("modelUri") or "")
    if uri.startswith("azureml://") and "/datastores/" in uri:
        workspace = MODEL_REFERENCE.search(model["id"])
        return locate(uri, workspace["workspace"] if workspace else "")
    if uri.startswith("https://"):
        container, _, prefix = urlsplit(uri).path.lstrip("/").partition("/")
        return Location(container, prefix)
    source = MODEL_REFERENCE.search(uri)
    if source and depth == 0:
        for resource in [r for k, r in service.resources.items() if k.endswith(f"/workspaces/{source['workspace']}")
                         or r.get("properties", {}).get("workspaceId") == source["workspace"]]:
            found = service.resources.get(f"{resource['id']}/models/{source['name']}/versions/{source['version']}"
                                          .lower())
            if found is not None:
                return model_location(service, found, depth + 1)
    raise ModelLoadError(f"the model's modelUri {uri!r} is not a place the local service keeps files")


def load_model(service: LocalAzureML, model: Resource) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session of the model version's `.onnx` file, read from the service's storage."""
    return SESSIONS.load(onnx_file(read_files(service, model_location(service, model))))


def score(
    service: LocalAzureML, workspace: str, endpoint: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """`POST <scoringUri>` with `Authorization: Bearer <endpoint key>`: live traffic picks a deployment (or
    the `azureml-model-deployment` header does, and then nothing is mirrored); the mirror share is copied to
    the mirror deployment, whose answer is only measured (safe-rollout docs). Statuses: troubleshooting docs."""
    from localaml import endpoints

    feature = endpoints.online(service)
    path = f"{service.workspace_id(workspace)}/onlineEndpoints/{endpoint}"
    resource = service.resources.get(path.lower())
    if resource is None:
        return arm_error(404, "NotFound", f"There is no online endpoint {endpoint} in workspace {workspace}.")
    if not _authorized(service, resource, headers):
        return arm_error(401, "Unauthorized", "The key or token is not valid for this endpoint.")
    try:
        rows = as_rows(body)
    except BadInput as error:
        return arm_error(400, "BadRequest", str(error))
    deployments = endpoints.deployments_of(service, path)
    picked = next((value for key, value in headers.items() if key.lower() == DEPLOYMENT_HEADER), None)
    mirrors: list[Resource] = []
    if picked:
        target = deployments.get(picked.lower())
        if target is None:
            return arm_error(404, "NotFound", f"The endpoint has no deployment {picked}.")
    else:
        live, mirror = _routes(feature, resource)
        name = choose(live, feature.rng)
        target = deployments.get(name.lower()) if name else None
        if target is None:
            return arm_error(404, "NotFound", "The endpoint doesn't have any valid deployment with positive weight.")
        mirrors = [deployments[n.lower()] for n, percent in sorted(mirror.items())
                   if percent and n.lower() in deployments and feature.rng.random() * 100 < percent]
    request_id = str(uuid.uuid4())  # answered in x-request-id; a mirrored copy keeps it (collector.py)
    answer = _invoke(service, target, rows, request_id, mirrored=False)
    for deployment in mirrors:
        _invoke(service, deployment, rows, request_id, mirrored=True)
    answer.headers["x-request-id"] = request_id
    return answer


def _authorized(service: LocalAzureML, endpoint: Resource, headers: dict[str, str]) -> bool:
    from localaml import endpoints

    authorization = next((value for key, value in headers.items() if key.lower() == "authorization"), "")
    if str(endpoint["properties"].get("authMode", "Key")).lower() != "key":
        return service.entra is not None and service.entra.claims(authorization) is not None
    return authorization.removeprefix("Bearer ") in endpoints.endpoint_keys(service, endpoint["id"])


def _routes(feature: OnlineEndpoints, endpoint: Resource) -> tuple[dict[str, int], dict[str, int]]:
    """Live and mirror traffic in force: while an update is applied, the split from before it."""
    before = feature.serving.get(endpoint["id"].lower())
    if before is not None and before[0] is endpoint and endpoint["properties"].get("provisioningState") == "Updating":
        return before[1], before[2]
    return dict(endpoint["properties"].get("traffic") or {}), dict(endpoint["properties"].get("mirrorTraffic") or {})


def choose(weights: dict[str, int], rng: random.Random) -> str | None:
    """A deployment drawn by traffic weight, or None when no deployment has traffic."""
    live = [(name, weight) for name, weight in sorted(weights.items()) if weight > 0]
    if not live:
        return None
    names, values = zip(*live, strict=True)
    return rng.choices(names, weights=values)[0]


def _invoke(service: LocalAzureML, deployment: Resource, rows: np.ndarray, request_id: str, *,
            mirrored: bool) -> Reply:
    """One deployment's answer, its faults applied, measured, recorded and collected (`collector.py`)."""
    from localaml import endpoints

    feature = endpoints.online(service)
    started = time.perf_counter()
    state = str(deployment["properties"].get("provisioningState") or "Succeeded")
    faults = feature.faults.get(deployment["id"].lower(), endpoints.Faults())
    if faults.latency_ms:  # local-only: a deployment made slower on purpose (to judge a canary against its champion)
        time.sleep(faults.latency_ms / 1000)
    if state not in SERVING_STATES:
        answer = arm_error(503, "ServiceUnavailable", f"Deployment {deployment['name']} is {state}.")
    elif faults.error_rate and feature.rng.random() < faults.error_rate:
        answer = _injected(faults.error_status, deployment["name"])
    else:
        answer = _predict(service, feature, deployment, rows)
        if answer.status == 200 and faults.flip_rate:
            answer = Reply(200, flipped(answer.body, faults.flip_rate, feature.rng))
    latency_ms = (time.perf_counter() - started) * 1000
    feature.scored.append(endpoints.Scored(deployment["name"], answer.status, latency_ms, mirrored))
    record_request(service, deployment["id"], answer.status, latency_ms)
    answer.headers[DEPLOYMENT_HEADER] = deployment["name"]
    if answer.status == 200:
        collector.of(service).collect(deployment, request_id, rows.tolist(), answer.body)
    return answer


def flipped(body: dict[str, Any], rate: float, rng: random.Random) -> dict[str, Any]:
    """A local-only fault: each row's class changed with probability `rate` (to the next class, its
    probabilities rolled with it), so a deployment disagrees with an identical model on purpose."""
    predictions, probabilities = list(body["predictions"]), body.get("probabilities")
    probabilities = [list(p) for p in probabilities] if probabilities else None
    for index, label in enumerate(predictions):
        if rng.random() >= rate:
            continue
        classes = len(probabilities[index]) if probabilities else 2
        if isinstance(label, bool) or not isinstance(label, int):
            continue  # only integer class labels are flipped
        predictions[index] = (label + 1) % classes
        if probabilities:
            probabilities[index] = probabilities[index][-1:] + probabilities[index][:-1]
    return {**body, "predictions": predictions, **({"probabilities": probabilities} if probabilities else {})}


def _injected(status: int, deployment: str) -> Reply:
    """A local-only fault: 424 as Azure answers a model's error (with its headers), or the status as is."""
    if status == 424:
        return arm_error(424, "ModelError", f"Deployment {deployment}: the model answered 500 (injected fault).",
                         {"ms-azureml-model-error-statuscode": "500",
                          "ms-azureml-model-error-reason": "injected fault"})
    return arm_error(status, "InjectedFault", f"Deployment {deployment} failed the request (injected fault).")


def _predict(service: LocalAzureML, feature: OnlineEndpoints, deployment: Resource, rows: np.ndarray) -> Reply:
    from localaml import endpoints

    key = deployment["id"].lower()
    cached = feature.sessions.get(key)
    try:
        if cached is None or cached[0] is not deployment:
            # A deployment seeded by a test (no provisioning ran) loads its model on first use.
            model = endpoints.find_model(service, deployment["properties"].get("model"))
            feature.sessions[key] = cached = (deployment, load_model(service, model))
        return Reply(200, predict(cached[1], rows))
    except BadInput as error:
        return arm_error(400, "BadRequest", str(error))
    except Exception as error:  # the scoring code failed: 502 (troubleshooting docs)
        return arm_error(502, "BadGateway", f"Deployment {deployment['name']} failed: {error}")


def record_request(service: LocalAzureML, deployment_id: str, status: int, latency_ms: float) -> None:
    """Count the request in Azure Monitor's metrics (`localaml.monitor.record_request`, when it is there)."""
    from localaml import monitor

    record = getattr(monitor, "record_request", None)
    if callable(record):
        record(service, deployment_id, status, latency_ms)
