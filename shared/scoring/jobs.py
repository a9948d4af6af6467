"""Scoring jobs: submit, fan out ranges, score them, let the last one commit.

A job's id is derived from what it scores (input blob and its ETag, model, output,
columns), so a repeated submission or a redelivered blob event finds the same job.
Each range is one queue message; any instance may score it. A range stages blocks
of the output with ids derived from its index, so a retry overwrites its own blocks;
it then records itself as done in the job record under ETag concurrency, and the
range that completes the set commits the block lists in range order and writes the
manifest. Until then nothing of the output is visible.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.adapters import telemetry
from shared.domain.ports import NotFound, PlatformError, Transient, TryLater
from shared.scoring import allocators
from shared.scoring.blobio import BlockSink
from shared.scoring.config import ScoringConfig
from shared.scoring.errors import HandoffFailed, InvalidInput, ScoringError, TooManyBadRows
from shared.scoring.formats import Format, detect_format
from shared.scoring.manifest import commit_output, errors_name, part_name, write_errors, write_manifest
from shared.scoring.plan import check_input_columns, inspect_input, plan_ranges
from shared.scoring.request import OnnxBlob, RegisteredModel, ScoringRequest

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from shared.adapters.storage.queue import WorkQueue
    from shared.adapters.storage.state import BlobStateStore
    from shared.domain.ports import MLPlatform
    from shared.settings import Settings

JOBS = "scoring-jobs"
RANGES = "scoring-ranges"
TERMINAL = ("completed", "failed", "handed_off")
HANDING_OFF = "handing_off"  # recorded before the batch endpoint is invoked (see _hand_off_once)
MAX_ERRORS_PER_RANGE = 1000
JOB_ID = re.compile(r"^(score|rejected)-[0-9a-f]{24}\Z")  # what `_job_id` and `_record_rejected` make
log = logging.getLogger(__name__)
Doc = dict[str, Any]


@dataclass(frozen=True)
class Scoring:
    """The ports a scoring job talks to; `platform` is needed for registered models and hand-off only."""

    blobs: BlobServiceClient
    state: BlobStateStore
    queue: WorkQueue
    config: ScoringConfig
    platform: MLPlatform | None = None

    def __post_init__(self) -> None:
        """Scoring starts here: tune the process's allocators (before pyarrow loads), as `allocators` explains."""
        allocators.tune()

    @classmethod
    def from_settings(
        cls, settings: Settings, platform: MLPlatform | None = None, config: ScoringConfig | None = None
    ) -> Scoring:
        """The ports on the app's storage, with `settings.scoring` unless `config` is given."""
        from shared.adapters.storage.clients import blob_service, queue_service
        from shared.adapters.storage.queue import WorkQueue
        from shared.adapters.storage.state import BlobStateStore

        config = config or settings.scoring
        blobs = blob_service(settings)
        state = BlobStateStore(blobs, settings.state_container)
        return cls(blobs, state, WorkQueue(queue_service(settings), config.queue), config, platform)


def submit(request: ScoringRequest, ports: Scoring) -> Doc:
    """Plan the job and enqueue its ranges; return its status. Raises InvalidInput naming the bad field."""
    container, name = request.input_parts()
    _check_containers(container, request.output.container or ports.config.output_container, ports)
    blob = ports.blobs.get_blob_client(container, name)
    try:
        properties = blob.get_blob_properties()
    except ResourceNotFoundError:
        raise InvalidInput(f"input: blob {request.input!r} does not exist") from None
    fmt = detect_format(name)
    output_format: Format = request.output.format or ("parquet" if fmt == "jsonl" else fmt)
    output = {
        "container": request.output.container or ports.config.output_container,
        "path": request.output.path or _default_output(name, output_format),
        "format": output_format,
    }
    model = _check_model(request, ports)
    size, etag = int(properties.size), str(properties.etag)
    job_id = _job_id(request, etag, output)
    existing = ports.state.get(JOBS, job_id)
    if existing is not None:
        if not existing.get("enqueued") and existing["state"] not in (*TERMINAL, HANDING_OFF):
            _enqueue(job_id, len(existing["ranges"]), ports)
        return public(existing)
    where = f"input {request.input!r}"
    info = inspect_input(blob, fmt, size, etag, where)
    if request.features:
        check_input_columns(fmt, info, blob, size, etag, request.features, request.id_columns, where)
    job: Doc = {
        "id": job_id,
        "state": "queued",
        "input": {"container": container, "name": name, "etag": etag, "size": size, "format": fmt, "info": info},
        "model": model,
        "output": output,
        "features": request.features,
        "id_columns": request.id_columns,
        "max_error_share": ports.config.max_error_share,
        "ranges": plan_ranges(fmt, info, size, ports.config.range_bytes),
        "done": {},
        "created": _now(),
    }
    if size >= ports.config.handoff_bytes and ports.config.batch_endpoint:
        return public(_hand_off_once(job, blob.url, size, ports))
    if not ports.state.create(JOBS, job_id, job):
        return public(ports.state.get(JOBS, job_id) or job)
    if job["state"] == "queued":
        _enqueue(job_id, len(job["ranges"]), ports)
    return public(job)


def submit_blob(container: str, name: str, ports: Scoring) -> Doc:
    """A blob landed in the input container: `<location>/<model>/<version>/<file>` names the registered model.

    A blob that cannot be scored gets a failed job, so the reason is visible in its status and manifest.
    """
    parts = name.split("/")
    try:
        if len(parts) < 4:
            raise InvalidInput(
                f"input {container}/{name}: put files under <location>/<model>/<version>/ to pick the model"
            )
        model = RegisteredModel(location=parts[0], name=parts[1], version=parts[2])
        return submit(ScoringRequest(input=f"{container}/{name}", model=model), ports)
    except (ScoringError, ValueError) as error:
        return _record_rejected(container, name, str(error), ports)


def run_range(job_id: str, index: int, ports: Scoring, final_attempt: bool = False) -> None:
    """Score range `index` of the job (once, however often the message arrives); commit if it was the last."""
    job = ports.state.get(JOBS, job_id)
    if job is None:
        log.warning("scoring range for unknown job %s ignored", job_id)
        return
    if job["state"] in TERMINAL:
        return
    if not 0 <= index < len(job["ranges"]):
        raise ValueError(f"job {job_id} has no range {index}")
    key = f"{job_id}.{index}"
    if ports.state.get(RANGES, key) is None:
        if not job.get("started"):
            ports.state.update(JOBS, job_id, lambda doc: _started(_existing(doc)), attempts=100)
        try:
            done = _score(job, index, ports)
        except ScoringError as error:
            fail(job_id, str(error), ports)
            return
        except Exception as error:
            if final_attempt:
                fail(job_id, f"range {index} failed on every attempt: {error}", ports)
            raise
        if ports.state.create(RANGES, key, done):
            telemetry.scored(done)
    rows = (ports.state.get(RANGES, key) or {}).get("rows", 0)
    job = ports.state.update(JOBS, job_id, lambda doc: _mark_done(_existing(doc), index, rows), attempts=100)
    if len(job["done"]) == len(job["ranges"]) and job["state"] not in TERMINAL:
        finalize(job_id, ports)


def finalize(job_id: str, ports: Scoring) -> None:
    """Every range is done: fail on too many bad rows, else commit the output, then write the manifest."""
    job = ports.state.get(JOBS, job_id) or {}
    ranges = [ports.state.get(RANGES, f"{job_id}.{index}") or {} for index in range(len(job["ranges"]))]
    rows = sum(item["rows"] for item in ranges)
    bad_rows = sum(item["bad_rows"] for item in ranges)
    errors_file = write_errors(ports.blobs, job, ranges)
    if rows and bad_rows / rows > job["max_error_share"]:
        error = TooManyBadRows(
            f"{bad_rows} of {rows} rows could not be parsed ({bad_rows / rows:.2%}, more than the allowed "
            f"{job['max_error_share']:.2%}); see {job['output']['container']}/{errors_name(job['output']['path'])}"
        )
        fail(job_id, str(error), ports, ranges, errors_file)
        return
    parts = commit_output(ports.blobs, job, ranges)
    features = next((item["features"] for item in ranges if item.get("features")), job.get("features"))
    changes = {"state": "completed", "finished": _now(), "rows": rows, "bad_rows": bad_rows, "features_used": features}
    job = ports.state.update(JOBS, job_id, lambda doc: _existing(doc) | changes, attempts=100)
    write_manifest(ports.blobs, job, ranges, parts, errors_file)


def fail(
    job_id: str, message: str, ports: Scoring, ranges: list[Doc] | None = None, errors_file: str | None = None
) -> None:
    """Mark the job failed (unless it completed) and write a manifest that says so; no output is committed."""
    log.warning("scoring job %s failed: %s", job_id, message)

    def change(doc: Doc | None) -> Doc:
        if doc is None or doc["state"] == "completed":
            return doc or {}
        return doc | {"state": "failed", "error": message, "finished": doc.get("finished") or _now()}

    job = ports.state.update(JOBS, job_id, change, attempts=100)
    if job.get("state") == "failed":
        write_manifest(ports.blobs, job, ranges or [], [], errors_file)


def status(job_id: str, ports: Scoring) -> Doc | None:
    """The job's progress, or None if there is no such job (nor can be: an id not made by `_job_id`)."""
    if not JOB_ID.match(job_id):
        return None
    job = ports.state.get(JOBS, job_id)
    if job is None:
        return None
    if job["state"] == "handed_off" and ports.platform is not None:
        try:
            job["handoff"]["status"] = ports.platform.get_job(*job["handoff"]["job"]).status.value
        except PlatformError as error:
            job["handoff"]["status"] = f"unknown: {error}"
    return public(job)


def public(job: Doc) -> Doc:
    """What the status endpoint shows of a job record."""
    rows = sum(job.get("done", {}).values())
    started = job.get("started")
    end = job.get("finished") or _now()
    elapsed = (datetime.fromisoformat(end) - datetime.fromisoformat(started)).total_seconds() if started else 0
    output = job["output"]
    return {
        "job_id": job["id"],
        "state": job["state"],
        "input": f"{job['input']['container']}/{job['input']['name']}",
        "output": f"{output['container']}/{output['path']}",
        "format": output["format"],
        "ranges": {"total": len(job["ranges"]), "done": len(job.get("done", {}))},
        "rows_done": rows,
        "rows_per_second": round(rows / elapsed, 1) if elapsed > 0 else None,
        "bad_rows": job.get("bad_rows"),
        "error": job.get("error"),
        "manifest": f"{output['container']}/{output['path']}.manifest.json",
        "created": job["created"],
        "started": started,
        "finished": job.get("finished"),
        **({"handoff": job["handoff"]} if "handoff" in job else {}),
    }


def _score(job: Doc, index: int, ports: Scoring) -> Doc:
    """Score one range into staged blocks; return its record (rows, errors, block ids, timings)."""
    from shared.scoring.pipeline import Source, score_range
    from shared.scoring.session import default_threads, load_model, model_file

    started = _now()
    source_doc, output = job["input"], job["output"]
    ref = (
        RegisteredModel(**job["model"]["ref"]) if "location" in job["model"]["ref"] else OnnxBlob(**job["model"]["ref"])
    )
    cache = Path(ports.config.model_cache or Path(tempfile.gettempdir()) / "aml-reactor-models")
    model = load_model(str(model_file(ref, ports.platform, ports.blobs, cache)))
    features = job["features"] or model.feature_names
    if not features:
        raise InvalidInput("the model does not name its features (ONNX metadata 'feature_names'); pass `features`")
    source = Source(
        blob=ports.blobs.get_blob_client(source_doc["container"], source_doc["name"]),
        format=source_doc["format"],
        size=source_doc["size"],
        etag=source_doc["etag"],
        info=source_doc["info"],
        where=f"input {source_doc['container']}/{source_doc['name']!r}",
    )
    csv_output = output["format"] == "csv"
    name = output["path"] if csv_output else part_name(output["path"], index)
    sink = BlockSink(
        ports.blobs.get_blob_client(output["container"], name),
        part=index if csv_output else 0,
        block_bytes=ports.config.block_bytes,
    )
    try:
        result = score_range(
            source,
            job["ranges"][index],
            model,
            features,
            job["id_columns"],
            sink,
            output["format"],
            header=index == 0 or not csv_output,
            chunk_bytes=ports.config.chunk_bytes,
            batch_rows=ports.config.batch_rows,
            threads=ports.config.threads or default_threads(),
        )
    except ResourceModifiedError:
        raise InvalidInput(f"{source.where} changed while it was being scored; submit it again") from None
    return {
        "index": index,
        "rows": result.rows,
        "bad_rows": len(result.errors),
        "errors": [error.to_doc() for error in result.errors[:MAX_ERRORS_PER_RANGE]],
        "blocks": sink.block_ids,
        "features": features,
        "seconds": {stage: round(value, 3) for stage, value in result.seconds.items()},
        "started": started,
        "finished": _now(),
    }


def _check_containers(source: str, target: str, ports: Scoring) -> None:
    """Read only the input container; never write into it (that would also trigger a new job) or into state."""
    if source != ports.config.input_container:
        raise InvalidInput(f"input: must be in container {ports.config.input_container!r}, not {source!r}")
    if target != ports.config.output_container:
        allowed = ports.config.output_container
        raise InvalidInput(f"output.container: scoring writes only to {allowed!r}, not {target!r}")
    with contextlib.suppress(ResourceExistsError):  # created on first use, like every container the app writes
        ports.blobs.get_container_client(target).create_container()


def _check_model(request: ScoringRequest, ports: Scoring) -> Doc:
    """The model must exist before any work is queued; returns how the job refers to it."""
    ref = request.model
    if isinstance(ref, RegisteredModel):
        if ports.platform is None:
            raise InvalidInput("model: registered models need the ML platform, which is not configured")
        try:
            found = ports.platform.get_model(*ref.key())
        except NotFound:
            raise InvalidInput(f"model: {ref.location}/{ref.name}:{ref.version} does not exist") from None
        return {"ref": ref.model_dump(), "uri": found.uri}
    container, name = ref.parts()
    try:
        properties = ports.blobs.get_blob_client(container, name).get_blob_properties()
    except ResourceNotFoundError:
        raise InvalidInput(f"model: blob {ref.blob!r} does not exist") from None
    return {"ref": ref.model_dump(), "etag": str(properties.etag)}


def _hand_off_once(job: Doc, input_url: str, size: int, ports: Scoring) -> Doc:
    """Hand the job to the batch endpoint at most once, whatever name the endpoint gives its batch job.

    The endpoint may ignore the job name asked for (Azure/azure-sdk-for-python#32763), so a retried
    hand-off cannot find an earlier batch job by that name. The scoring job is recorded first, as
    `handing_off`, and only the submit that created the record invokes the endpoint; the batch job's
    real name is recorded after. A failed invoke removes the record, so a retry starts afresh.
    """
    if not ports.state.create(JOBS, job["id"], job | {"state": HANDING_OFF}):
        return ports.state.get(JOBS, job["id"]) or job | {"state": HANDING_OFF}
    try:
        handed = _hand_off(job["id"], input_url, size, ports)
    except BaseException:
        ports.state.delete(JOBS, job["id"])
        raise
    return ports.state.update(JOBS, job["id"], lambda doc: (doc or job) | handed, attempts=100)


def _hand_off(job_id: str, input_url: str, size: int, ports: Scoring) -> Doc:
    """Too big for Functions: start the Azure ML batch endpoint on it instead, as a job named `job_id`.

    The endpoint's default deployment scores it. TryLater and Transient propagate, so the
    caller tries again (HTTP 503, the blob trigger's retries); any other refusal is HandoffFailed.
    """
    too_big = f"input is {size:,} bytes, above MLOPS_SCORING_HANDOFF_BYTES ({ports.config.handoff_bytes:,})"
    if ports.platform is None:
        raise HandoffFailed(f"{too_big}, but the ML platform is not configured")
    workspace, _, endpoint = (ports.config.batch_endpoint or "").partition("/")
    try:
        remote = ports.platform.invoke_batch_endpoint(workspace, endpoint, job_id, input_url)
    except (TryLater, Transient):
        raise
    except (PlatformError, ValueError) as error:
        refused = f"batch endpoint {ports.config.batch_endpoint} did not take it: {error}"
        raise HandoffFailed(f"{too_big}; {refused}") from None
    return {"state": "handed_off", "handoff": {"job": [workspace, remote.name], "endpoint": endpoint}}


def _record_rejected(container: str, name: str, message: str, ports: Scoring) -> Doc:
    digest = hashlib.sha256(f"{container}/{name}".encode()).hexdigest()[:24]
    job: Doc = {
        "id": f"rejected-{digest}",
        "state": "failed",
        "error": message,
        "ranges": [],
        "done": {},
        "input": {"container": container, "name": name},
        "output": {"container": ports.config.output_container, "path": name, "format": "csv"},
        "created": _now(),
        "finished": _now(),
    }
    log.warning("scoring input %s/%s rejected: %s", container, name, message)
    ports.state.create(JOBS, job["id"], job)
    return public(job)


def _enqueue(job_id: str, count: int, ports: Scoring) -> None:
    for index in range(count):
        ports.queue.send(telemetry.carry({"job": job_id, "range": index}))
    ports.state.update(JOBS, job_id, lambda doc: _existing(doc) | {"enqueued": True}, attempts=100)


def _started(doc: Doc) -> Doc:
    return doc if doc.get("started") else doc | {"started": _now(), "state": "running"}


def _mark_done(doc: Doc, index: int, rows: int) -> Doc:
    doc["done"][str(index)] = rows
    return doc


def _job_id(request: ScoringRequest, etag: str, output: Doc) -> str:
    identity = {"request": request.model_dump(mode="json"), "etag": etag, "output": output}
    return "score-" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _default_output(name: str, fmt: Format) -> str:
    stem = name.rsplit(".", 1)[0]
    return f"{stem}.{fmt}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _existing(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The job's record, which an update of a job always finds (jobs are never deleted while they run)."""
    if doc is None:
        raise LookupError("the scoring job's record is gone")
    return doc
