"""Batch-scoring triggers: translate the binding, call `shared.scoring.jobs`.

The blob trigger binds the SDK type `BlobClient` (deferred binding): the host passes
only a reference to the blob, so a multi-GiB file is never loaded into the worker,
which a `func.InputStream` parameter would do before the call.
"""

import functools
import json
import logging
import re
import uuid

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

bp = func.Blueprint()
log = logging.getLogger(__name__)
INPUT_CONTAINER = "scoring-input"
QUEUE = "scoring-ranges"
MAX_DEQUEUE = 5


@functools.cache
def _ports():
    from shared.bootstrap import services
    from shared.scoring.jobs import Scoring

    app = services()
    return Scoring.from_settings(app.settings, app.platform)


@bp.function_name("score_blob")
@bp.blob_trigger(
    arg_name="client",
    path=f"{INPUT_CONTAINER}/{{name}}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def score_blob(client: blob.BlobClient) -> None:
    """A file landed in the input container: start a job for it (reads its name, never its content)."""
    from shared.scoring.jobs import submit_blob

    job = submit_blob(client.container_name, client.blob_name, _ports())
    log.info("scoring %s/%s: job %s %s", client.container_name, client.blob_name, job["job_id"], job["state"])


@bp.function_name("score_submit")
@bp.route(route="score", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def score_submit(req: func.HttpRequest) -> func.HttpResponse:
    """Submit a job; 202 with its status, 400 naming the bad field.

    A hand-off the batch endpoint refuses is 502; a busy or failing platform 503 with Retry-After.
    """
    from pydantic import ValidationError

    from shared.platform.port import PlatformError
    from shared.scoring.errors import HandoffFailed, ScoringError
    from shared.scoring.jobs import submit
    from shared.scoring.request import OUTPUT_CONTAINERS, ScoringRequest

    body = req.get_body() or b""
    try:
        request = ScoringRequest.model_validate_json(body)
        if request.output.container is not None:  # settings are read only for a request that names one
            allowed = {_ports().config.output_container}
            request = ScoringRequest.model_validate_json(body, context={OUTPUT_CONTAINERS: allowed})
    except ValidationError as error:
        problems = [
            {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
            for item in error.errors()
        ]
        first = problems[0] if problems else {"field": "body", "message": "invalid request"}
        return _error(400, f"{first['field']}: {first['message']}", first["field"], problems=problems)
    try:
        job = submit(request, _ports())
    except HandoffFailed as error:
        return _error(502, str(error))
    except ScoringError as error:
        return _error(400, str(error), _field_of(str(error)))
    except PlatformError as error:
        from shared.ops.errors import answer

        status, body, headers = answer(error, uuid.uuid4().hex)
        return _json(body, status, headers)
    headers = {"Location": f"/api/score/{job['job_id']}"}
    return _json(job, 202, headers)


@bp.function_name("score_status")
@bp.route(route="score/{job_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def score_status(req: func.HttpRequest) -> func.HttpResponse:
    from shared.scoring.jobs import JOB_ID, status

    job_id = req.route_params.get("job_id", "")
    if not JOB_ID.match(job_id):
        return _error(400, f"job_id: {job_id[:100]!r} is not a job id (score-<24 hex digits>)", "job_id")
    job = status(job_id, _ports())
    return _json(job, 200) if job else _error(404, f"no scoring job {job_id!r}")


@bp.function_name("score_range")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE, connection="AzureWebJobsStorage")
def score_range(msg: func.QueueMessage) -> None:
    """Score one range; an exception makes the host retry it, and the last attempt fails the job."""
    from shared.scoring.jobs import run_range

    item = msg.get_json()
    run_range(str(item["job"]), int(item["range"]), _ports(), final_attempt=(msg.dequeue_count or 1) >= MAX_DEQUEUE)


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, default=str), status_code=status, mimetype="application/json", headers=headers
    )


FIELD = re.compile(r"^(?P<field>[a-z_][a-z0-9_.\[\]]*): ")


def _error(status: int, message: str, field: str | None = None, **extra: object) -> func.HttpResponse:
    """An error in the admin API's shape: `{"error", "field"}` (and details where there are several)."""
    return _json({"error": message, "field": field, **extra}, status)


def _field_of(message: str) -> str | None:
    """The field a scoring refusal names at its start (`output.container: ...`), if any."""
    match = FIELD.match(message)
    return match["field"] if match else None
