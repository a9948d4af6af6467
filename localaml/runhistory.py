"""Run history: a run's details (its status, its error, its log files) and the workspace discovery
document that leads azure-ai-ml to them; and, local only, a job's own page.

Azure ML keeps a job's error on its run and each step's output in the run's `user_logs/std_log.txt`
(azure-ai-ml `constants/_job/job.py`: `COMMON_RUNTIME_STREAM_LOG_PATTERN = "user_logs/std_log..."`,
under `ExperimentRun/dcid.<run id>/`, `operations/_job_operations.py`). azure-ai-ml reads both through
the run history service (`_restclient/runhistory`, `RunsOperations.get_details`:
`GET /history/v1.0/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/
workspaces/{}/runs/{runId}/details`, a `RunDetails`: `runId`, `status`, `error` an `ErrorResponse` of a
`RootError` {code, message}, `logFiles` a name -> SAS URL map), at the `api` URL of the workspace's
discovery document (`_job_operations._get_workspace_url`: `GET <discoveryUrl>`, keys of
`WorkspaceDiscoveryUrlKey`). `jobs.stream()` prints the same.

The job page (`GET /localaml/jobs/<workspace>/<name>`, a local-only control like the others under
`/localaml/`) is where a job's Studio link points locally: Azure ML studio cannot show a job of this
service. It shows the status, the error and each step's log, and takes no token (a browser follows a link
without one): the service listens on loopback only and is never deployed.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from localaml.datastores import ACCOUNT, ACCOUNT_KEY, workspace_container
from localaml.errors import Reply, arm_error

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

STD_LOG = "user_logs/std_log.txt"
DETAILS = (r"^/history/v1\.0(?P<scope>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
           r"Microsoft\.MachineLearningServices/workspaces/(?P<workspace>[^/]+))/runs/(?P<run_id>[^/]+)/details$")
PAGE = r"^/localaml/jobs/(?P<workspace>[A-Za-z0-9_-]{1,64})/(?P<name>[A-Za-z0-9_.-]{1,255})$"
STATUS = {"SCHEDULED": "NotStarted", "RUNNING": "Running", "FINISHED": "Completed", "FAILED": "Failed",
          "KILLED": "Canceled"}  # MLflow's run status -> run history's
LOG_SAS_HOURS = 1
PAGE_LOG_BYTES = 64 * 1024


def install(service: LocalAzureML) -> None:
    service.route("GET", r"^/discovery$", lambda **_: discovery(service))
    service.route("GET", DETAILS, lambda **kw: details(service, **kw))
    service.route("GET", PAGE, lambda **kw: page(service, **kw), anonymous=True)


def log_blob(run_id: str) -> str:
    """Where a run's standard output and error are kept in the workspace's default datastore."""
    return f"ExperimentRun/dcid.{run_id}/{STD_LOG}"


def job_page(service: LocalAzureML, job_path: str) -> str:
    """The service's own page of a job (its Studio link here)."""
    workspace, _, name = job_path.rpartition("/jobs/")
    return f"{service.base_url}localaml/jobs/{workspace.rpartition('/')[2]}/{name}"


def discovery(service: LocalAzureML) -> Reply:
    """The workspace discovery document: every data-plane service at this service's URL."""
    base = service.base_url.rstrip("/")
    return Reply(200, {name: base for name in ("api", "catalog", "experimentation", "gallery", "history",
                                               "hyperdrive", "labeling", "modelmanagement", "pipelines")}
                 | {"studio": "https://ml.azure.com"})


def details(service: LocalAzureML, workspace: str, run_id: str, **_: Any) -> Reply:
    """A run's details: its status, the job's error when it failed, its log file as a SAS URL."""
    run = service.runs.get(run_id)
    if run is None:
        return arm_error(404, "UserError", f"Run {run_id} was not found")
    info = run["info"]
    tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
    status = STATUS.get(info["status"], info["status"])
    answer: dict[str, Any] = {
        "runId": run_id, "runUuid": run_id, "status": status, "parentRunId": tags.get("mlflow.parentRunId"),
        "startTimeUtc": _time(info.get("start_time")), "endTimeUtc": _time(info.get("end_time")),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.")}, "logFiles": {}, "warnings": [],
    }
    error = _error(service, workspace, run_id, tags.get("mlflow.parentRunId"))
    if status == "Failed" and error:
        answer["error"] = {"error": {"code": "UserError", "message": error}}
    if (url := _log_url(service, workspace, run_id)) is not None:
        answer["logFiles"][STD_LOG] = url
    return Reply(200, answer)


def page(service: LocalAzureML, workspace: str, name: str, **_: Any) -> Reply:
    """The job's page: status, error, and each step's log (the end of it, when long)."""
    run = service.runs.get(name)
    if run is None:
        return Reply(404, f"<p>No job {html.escape(name)} in {html.escape(workspace)}.</p>".encode(),
                     {"Content-Type": "text/html; charset=utf-8"})
    steps = sorted((r for r in service.runs.values() if any(t["key"] == "mlflow.parentRunId" and t["value"] == name
                                                            for t in r["data"]["tags"])),
                   key=lambda r: r["info"].get("start_time") or 0)
    status = STATUS.get(run["info"]["status"], run["info"]["status"])
    error = _error(service, workspace, name, None)
    parts = [f"<h1>Job {html.escape(name)}</h1>", f"<p>Workspace {html.escape(workspace)}: <b>{status}</b></p>"]
    if error and status == "Failed":
        parts.append(f"<h2>Error</h2><pre>{html.escape(error)}</pre>")
    for step in [run, *steps]:
        log = _log_text(service, workspace, step["info"]["run_id"])
        if log is not None:
            title = step["info"].get("run_name") or step["info"]["run_id"]
            parts.append(f"<h2>{html.escape(title)}: {STD_LOG}</h2><pre>{html.escape(log)}</pre>")
    body = ("<!doctype html><meta charset=utf-8><title>Job " + html.escape(name) + "</title>" + "".join(parts))
    return Reply(200, body.encode(), {"Content-Type": "text/html; charset=utf-8",
                                      "Content-Security-Policy": "default-src 'none'"})


def _error(service: LocalAzureML, workspace: str, run_id: str, parent: str | None) -> str | None:
    """The job's error (a failed step's run reports its job's, which names the step)."""
    from localaml import jobs

    for name in filter(None, (run_id, parent)):
        for record in jobs.records(service).values():
            if record.name == name and record.workspace == workspace and record.error:
                return record.error
    return None


def _blob(service: LocalAzureML, workspace: str, run_id: str) -> Any | None:
    if service.storage is None or not re.fullmatch(r"[A-Za-z0-9_.-]+", run_id):
        return None
    blob = service.storage.get_blob_client(workspace_container(workspace), log_blob(run_id))
    return blob if blob.exists() else None


def _log_url(service: LocalAzureML, workspace: str, run_id: str) -> str | None:
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    blob = _blob(service, workspace, run_id)
    if blob is None:
        return None
    sas = generate_blob_sas(ACCOUNT, blob.container_name, blob.blob_name, account_key=ACCOUNT_KEY,
                            permission=BlobSasPermissions(read=True),
                            expiry=datetime.now(UTC) + timedelta(hours=LOG_SAS_HOURS))
    return f"{service.storage.url.rstrip('/')}/{blob.container_name}/{quote(blob.blob_name)}?{sas}"  # type: ignore[union-attr]


def _log_text(service: LocalAzureML, workspace: str, run_id: str) -> str | None:
    blob = _blob(service, workspace, run_id)
    if blob is None:
        return None
    size = blob.get_blob_properties().size
    start = max(0, size - PAGE_LOG_BYTES)
    text = blob.download_blob(offset=start).readall().decode("utf-8", "replace")
    return ("…\n" if start else "") + text


def _time(milliseconds: int | None) -> str | None:
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat()
