"""Why a job failed, as Azure ML keeps it: the error on the job's run and the last lines of its
`user_logs/std_log.txt` (or of its failed step's, for a pipeline), read over REST.

Azure ML's job resource carries no failure reason. The run history service does: `GET <api>/history/v1.0
<workspace scope>/runs/<run id>/details` answers a `RunDetails` with `error.error.message` and `logFiles`,
a name -> SAS URL map (azure-ai-ml `_restclient/runhistory`, `RunsOperations.get_details`; `jobs.stream()`
prints the same). `<api>` is the host of the workspace's MLflow tracking URI (both are the workspace
discovery document's `api`). A pipeline's steps are its MLflow child runs. Reading the reason is best
effort: a job is judged failed whether or not its reason can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.adapters.azureml.metrics import Rest, descendants
from shared.domain.ports import PlatformError

STD_LOG = "user_logs/std_log.txt"
LOG_LINES = 20  # the end of a log that says why, in a notification and a lifecycle
LOG_BYTES = 16 * 1024  # read from the end of the log: enough for LOG_LINES of a traceback


@dataclass(frozen=True)
class Failure:
    error: str | None = None
    log: str | None = None  # the last lines of the failed run's std_log.txt
    log_name: str | None = None  # whose log: `<step>/user_logs/std_log.txt`


def history_url(tracking_base: str) -> str:
    """`https://<api>/history/v1.0<scope>` from the workspace's `https://<api>/mlflow/v1.0<scope>`."""
    return tracking_base.replace("/mlflow/v1.0/", "/history/v1.0/", 1)


def failure(rest: Rest, tracking_base: str, job_name: str, *, scope: str) -> Failure:
    """The job's error and the end of the log of the run that failed; empty when neither can be read."""
    try:
        details = _details(rest, tracking_base, job_name, scope)
        error = ((details.get("error") or {}).get("error") or {}).get("message")
        log_name, url = STD_LOG, (details.get("logFiles") or {}).get(STD_LOG)
        if url is None:
            for step in _failed_steps(rest, tracking_base, job_name, scope):
                step_details = _details(rest, tracking_base, step["info"]["run_id"], scope)
                if url := (step_details.get("logFiles") or {}).get(STD_LOG):
                    log_name = f"{step['info'].get('run_name') or step['info']['run_id']}/{STD_LOG}"
                    break
        return Failure(error=error, log=_tail(url) if url else None, log_name=log_name if url else None)
    except (PlatformError, KeyError, TypeError):  # a reason that cannot be read leaves the verdict as it is
        return Failure()


def _details(rest: Rest, tracking_base: str, run_id: str, scope: str) -> dict[str, Any]:
    return rest.call("GET", f"{history_url(tracking_base)}/runs/{run_id}/details", what=f"run {run_id}'s details",
                     scope=scope)


def _failed_steps(rest: Rest, tracking_base: str, job_name: str, scope: str) -> list[dict[str, Any]]:
    run = rest.call("GET", f"{tracking_base}/api/2.0/mlflow/runs/get", params={"run_id": job_name},
                    what=f"MLflow run {job_name}", scope=scope)
    experiment = run["run"]["info"]["experiment_id"]
    steps = descendants(rest, tracking_base, experiment, job_name, scope=scope)
    return [step for step in steps if step["info"].get("status") in ("FAILED", "KILLED")]


def _tail(url: str) -> str | None:
    """The last LOG_LINES lines of the log at its SAS URL (its last LOG_BYTES: Blob Storage takes a range with a
    start, not a suffix), or None."""
    import requests

    try:
        size = int(requests.head(url, timeout=10).headers.get("Content-Length") or 0)
        start = max(0, size - LOG_BYTES)
        response = requests.get(url, headers={"Range": f"bytes={start}-"} if start else {}, timeout=10)
    except (requests.RequestException, ValueError):
        return None
    if response.status_code not in (200, 206):
        return None
    lines = response.content.decode("utf-8", "replace").splitlines()
    if start and len(lines) > 1:
        lines = lines[1:]  # the range began mid-line
    return "\n".join(lines[-LOG_LINES:]) or None
