"""MLflow tracking REST: runs, their metrics and tags, as a workspace's tracking server answers.

The workspace's `mlFlowTrackingUri` (`azureml://<host>/mlflow/v1.0/<workspace id>`) is an
MLflow tracking server: the endpoints, bodies and error codes below are MLflow's REST API
(mlflow.org docs, "REST API": runs/create, runs/get, runs/search, runs/update, runs/log-metric,
runs/log-batch, runs/set-tag, experiments/get-by-name, experiments/get). Azure ML makes a
pipeline job's run (run id = job name) and a child run per step whose tag
`mlflow.parentRunId` is the job name; the steps log into their run through MLFLOW_RUN_ID.
Runs live in `service.runs` by run id, in the shape `runs/get` answers.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

API = r"^/mlflow/v1\.0/(?P<workspace>subscriptions/.+/workspaces/[^/]+)/api/2\.0/mlflow/"
TERMINAL = ("FINISHED", "FAILED", "KILLED")


def install(service: LocalAzureML) -> None:
    def add(method: str, endpoint: str, handler: Any) -> None:
        service.route(method, API + endpoint + "$", lambda **kw: handler(service, **kw))

    add("GET", r"runs/get", mlflow_get)
    add("POST", r"runs/search", mlflow_search)
    add("POST", r"runs/create", mlflow_create)
    add("POST", r"runs/update", mlflow_update)
    add("POST", r"runs/log-metric", mlflow_log_metric)
    add("POST", r"runs/log-batch", mlflow_log_batch)
    add("POST", r"runs/set-tag", mlflow_set_tag)
    add("GET", r"experiments/get-by-name", mlflow_experiment_by_name)
    add("GET", r"experiments/get", mlflow_experiment)


# -- what the job runner uses --------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def new_run(
    service: LocalAzureML, run_id: str, experiment_id: str, name: str, *, parent: str | None = None,
    tags: dict[str, str] | None = None, status: str = "SCHEDULED",
) -> dict[str, Any]:
    """Make a run (a job's or a step's) as Azure ML does when it schedules the job."""
    all_tags = {"mlflow.runName": name, **(tags or {})}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    run = {
        "info": {
            "run_id": run_id, "run_uuid": run_id, "experiment_id": experiment_id, "run_name": name,
            "user_id": "", "status": status, "start_time": now_ms(), "artifact_uri": "",
            "lifecycle_stage": "active",
        },
        "data": {"metrics": [], "params": [], "tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        "inputs": {},
    }
    with service.lock:
        service.runs[run_id] = run
    return run


def set_status(service: LocalAzureML, run_id: str, status: str) -> None:
    """RUNNING, FINISHED, FAILED or KILLED; a terminal status stamps the end time."""
    with service.lock:
        run = service.runs.get(run_id)
        if run is None:  # the runs were cleared (a test's fresh state) while the job ran
            return
        info = run["info"]
        info["status"] = status
        if status in TERMINAL:
            info.setdefault("end_time", now_ms())


# -- the REST API -----------------------------------------------------------------------


def _missing(run_id: str) -> Reply:
    return Reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run '{run_id}' not found."})


def _invalid(message: str) -> Reply:
    return Reply(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": message})


def _run(service: LocalAzureML, body: Any, query: dict[str, str] | None = None) -> dict[str, Any] | None:
    source = body if isinstance(body, dict) else (query or {})
    run_id = source.get("run_id") or source.get("run_uuid") or ""
    return service.runs.get(run_id)


def mlflow_get(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    run = _run(service, None, query)
    return Reply(200, {"run": run}) if run else _missing(query.get("run_id", ""))


def mlflow_search(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    """Runs of the experiments; the filter Azure ML's clients use is on `tags.mlflow.parentRunId`."""
    match = re.search(r"tags\.mlflow\.parentRunId\s*=\s*'([^']+)'", (body or {}).get("filter", ""))
    parent = match.group(1) if match else None
    experiments = set((body or {}).get("experiment_ids") or [])
    runs = [
        run for run in service.runs.values()
        if (parent is None or tag(run, "mlflow.parentRunId") == parent)
        and (not experiments or run["info"]["experiment_id"] in experiments)
    ]
    runs.sort(key=lambda run: run["info"].get("start_time") or 0)
    return Reply(200, {"runs": runs} if runs else {})


def mlflow_create(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    from uuid import uuid4

    tags = {item["key"]: item["value"] for item in body.get("tags", [])}
    run = new_run(
        service, uuid4().hex, str(body.get("experiment_id", "0")), body.get("run_name") or tags.get(
            "mlflow.runName", ""), tags=tags, status="RUNNING",
    )
    return Reply(200, {"run": run})


def mlflow_update(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    run = _run(service, body)
    if run is None:
        return _missing(body.get("run_id", ""))
    if body.get("status"):
        run["info"]["status"] = body["status"]
    if body.get("end_time"):
        run["info"]["end_time"] = int(body["end_time"])
    if body.get("run_name"):
        run["info"]["run_name"] = body["run_name"]
    return Reply(200, {"run_info": run["info"]})


def mlflow_log_metric(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    run = _run(service, body)
    if run is None:
        return _missing(body.get("run_id", ""))
    _log_metrics(run, [body])
    return Reply(200, {})


def mlflow_log_batch(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    run = _run(service, body)
    if run is None:
        return _missing(body.get("run_id", ""))
    _log_metrics(run, body.get("metrics", []))
    for item in body.get("tags", []):
        _set_tag(run, item["key"], item["value"])
    params = {item["key"]: item for item in run["data"]["params"]}
    params.update({item["key"]: {"key": item["key"], "value": item["value"]} for item in body.get("params", [])})
    run["data"]["params"] = list(params.values())
    return Reply(200, {})


def mlflow_set_tag(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    run = _run(service, body)
    if run is None:
        return _missing(body.get("run_id", ""))
    _set_tag(run, body["key"], body["value"])
    return Reply(200, {})


def mlflow_experiment_by_name(
    service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any
) -> Reply:
    name = query.get("experiment_name", "")
    for run in service.runs.values():
        if tag(run, "azureml.experimentName") == name:
            return Reply(200, {"experiment": _experiment(run["info"]["experiment_id"], name)})
    return Reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Experiment '{name}' does not exist."})


def mlflow_experiment(service: LocalAzureML, workspace: str, query: dict[str, str], body: Any, **_: Any) -> Reply:
    experiment_id = query.get("experiment_id", "")
    for run in service.runs.values():
        if run["info"]["experiment_id"] == experiment_id:
            return Reply(200, {"experiment": _experiment(experiment_id, tag(run, "azureml.experimentName") or "")})
    return _invalid(f"No Experiment with id={experiment_id} exists")


def _experiment(experiment_id: str, name: str) -> dict[str, Any]:
    return {"experiment_id": experiment_id, "name": name, "artifact_location": "", "lifecycle_stage": "active"}


def _log_metrics(run: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """Keep each key's latest value (by step, then timestamp), as runs/get answers."""
    latest = {item["key"]: item for item in run["data"]["metrics"]}
    for item in items:
        metric = {
            "key": item["key"], "value": float(item["value"]),
            "timestamp": int(item.get("timestamp") or now_ms()), "step": int(item.get("step") or 0),
        }
        known = latest.get(metric["key"])
        if known is None or (metric["step"], metric["timestamp"]) >= (known["step"], known["timestamp"]):
            latest[metric["key"]] = metric
    run["data"]["metrics"] = list(latest.values())


def _set_tag(run: dict[str, Any], key: str, value: str) -> None:
    tags = [item for item in run["data"]["tags"] if item["key"] != key]
    run["data"]["tags"] = [*tags, {"key": key, "value": value}]


def tag(run: dict[str, Any], key: str) -> str | None:
    for item in run.get("data", {}).get("tags", []):
        if item["key"] == key:
            return item["value"]
    return None
