"""Sandbox jobs: recorded in storage, run for real by a detached runner process.

Submitting records the job (once: the name is the idempotency key) and starts
`python -m shared.platform.sandbox.run_job <workspace> <job>` in its own session, so
the job neither blocks the caller nor dies with the app's process. The runner marks
the job running, runs its pipeline, stores metrics or the error, and publishes
RunCompleted or RunStatusChanged (Failed), as Azure ML does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.platform.port import Job, JobStatus, NotFound
from shared.platform.sandbox import events, pipelines
from shared.platform.sandbox.store import Rejected, SandboxStore, check_name, check_workspace, key

if TYPE_CHECKING:
    from shared.platform.sandbox.platform import SandboxPlatform

KIND = "jobs"
ROOT = Path(__file__).resolve().parents[3]
LOGS = Path(tempfile.gettempdir()) / "aml-sandbox-jobs"
log = logging.getLogger(__name__)


def _key(workspace: str, job_name: str) -> str:
    return key(check_workspace(workspace), check_name("job", job_name))


def submit(
    store: SandboxStore, workspace: str, job_name: str, pipeline: str, inputs: dict[str, str], tags: dict[str, str]
) -> tuple[dict[str, Any], bool]:
    """Record the job; (the job, True) if this call created it, (the earlier job, False) if it existed."""
    record = _key(workspace, job_name)
    existing = store.get(KIND, record)
    if existing is not None:
        return existing, False
    pipelines.check_inputs(pipeline, inputs)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise Rejected(f"job tags must map strings to strings, got {tags!r}")
    doc = {
        "workspace": workspace, "name": job_name, "pipeline": pipeline, "inputs": dict(inputs), "tags": dict(tags),
        "experiment": pipeline, "experiment_id": events.stable_id(workspace, "experiment", pipeline),
        "status": JobStatus.QUEUED.value, "metrics": {}, "outputs": {}, "error": None,
        "created": time.time(), "log": str(LOGS / f"{workspace}-{job_name}.log"),
    }
    if store.create(KIND, record, doc):
        return doc, True
    return load(store, workspace, job_name), False


def load(store: SandboxStore, workspace: str, job_name: str) -> dict[str, Any]:
    doc = store.get(KIND, _key(workspace, job_name))
    if doc is None:
        raise NotFound(f"job {job_name!r} does not exist in workspace {workspace!r}")
    return doc


def view(doc: dict[str, Any], stale_after: float) -> Job:
    """The port's Job; a job unfinished long after submission is reported failed (its runner died)."""
    status, error = JobStatus(doc["status"]), doc.get("error")
    if not status.is_terminal and time.time() - doc["created"] > stale_after:
        status = JobStatus.FAILED
        error = f"the sandbox job runner stopped without reporting after {stale_after:.0f} s; see {doc['log']}"
    return Job(
        workspace=doc["workspace"], name=doc["name"], status=status, experiment=doc["experiment"],
        tags=doc["tags"], metrics=doc["metrics"], error=error,
    )


def spawn(
    store: SandboxStore, doc: dict[str, Any], environ: dict[str, str], deadline: float
) -> subprocess.Popen[bytes]:
    """Start the runner in its own session (it outlives the caller), for at most `deadline` seconds."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(doc["log"], "ab") as output:
        runner = subprocess.Popen(
            [sys.executable, "-m", "shared.platform.sandbox.run_job", doc["workspace"], doc["name"],
             "--deadline", str(max(1, round(deadline)))],
            cwd=ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    store.update(KIND, _key(doc["workspace"], doc["name"]), lambda current: {**(current or doc), "pid": runner.pid})
    return runner


def running(store: SandboxStore) -> list[dict[str, Any]]:
    """Unfinished jobs whose runner process is alive on this machine."""
    return [
        doc for doc in store.list(KIND)
        if not JobStatus(doc["status"]).is_terminal and doc.get("pid") and is_runner(doc["pid"], doc["name"])
    ]


def stop(store: SandboxStore, doc: dict[str, Any], reason: str) -> None:
    """Kill the job's runner (and anything it started) and record the job as failed."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if is_runner(doc["pid"], doc["name"]):
            os.killpg(doc["pid"], signal.SIGKILL)

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        current = current or doc
        if not JobStatus(current["status"]).is_terminal:
            current.update(status=JobStatus.FAILED.value, error=reason)
        return current

    store.update(KIND, _key(doc["workspace"], doc["name"]), change)


def is_runner(pid: int, job_name: str) -> bool:
    """Whether `pid` is still the runner of `job_name` (not a finished one, nor a reused pid). Linux only."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"shared.platform.sandbox.run_job" in argv and job_name.encode() in argv


def run(platform: SandboxPlatform, workspace: str, job_name: str) -> dict[str, Any]:
    """Run a queued job to its end and publish its outcome (in the runner process)."""
    store = platform.store
    claimed = {}

    def start(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            raise NotFound(f"job {job_name!r} does not exist in workspace {workspace!r}")
        claimed["ok"] = doc["status"] == JobStatus.QUEUED.value
        if claimed["ok"]:
            doc.update(status=JobStatus.RUNNING.value, started=time.time())
        return doc

    doc = store.update(KIND, _key(workspace, job_name), start)
    if not claimed["ok"]:
        log.warning("job %s/%s is %s already; not run again", workspace, job_name, doc["status"])
        return doc
    try:
        metrics, outputs = pipelines.PIPELINES[doc["pipeline"]](platform, doc)
        finish = {"status": JobStatus.COMPLETED.value, "metrics": metrics, "outputs": outputs}
    except Exception as error:
        log.exception("job %s/%s failed", workspace, job_name)
        finish = {"status": JobStatus.FAILED.value, "error": f"{type(error).__name__}: {error}"}
    finish["finished"] = datetime.now(UTC).isoformat()
    doc = store.update(KIND, _key(workspace, job_name), lambda current: {**(current or doc), **finish})
    event = events.run_finished(doc)
    event["data"]["runProperties"].update(doc.get("outputs") or {})
    platform.publisher.publish(event)
    return doc
