"""Batch-scoring triggers: translate the binding, call `shared.scoring.jobs`.

The blob trigger binds the SDK type `BlobClient` (deferred binding): the host passes
only a reference to the blob, so a multi-GiB file is never loaded into the worker,
which a `func.InputStream` parameter would do before the call.
"""

import functools
import logging
from typing import TYPE_CHECKING

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from shared.bindings import setting_expression

if TYPE_CHECKING:
    from shared.scoring.jobs import Scoring

bp = func.Blueprint()
log = logging.getLogger(__name__)
# Bound from app settings, as `shared.settings` lets people rename them; the host resolves them at start.
INPUT_CONTAINER = setting_expression("MLOPS_SCORING_INPUT_CONTAINER")
QUEUE = setting_expression("MLOPS_SCORING_QUEUE")
MAX_DEQUEUE = 5


@functools.cache
def _ports() -> "Scoring":
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
    """Submit a job: 202 with its status; errors in every route's shape (`shared.scoring.api`)."""
    from shared.scoring import api

    return api.submit(req, _ports)


@bp.function_name("score_status")
@bp.route(route="score/{job_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def score_status(req: func.HttpRequest) -> func.HttpResponse:
    """A job's progress: 200, 400 for an id no job can have, 404 for an unknown one."""
    from shared.scoring import api

    return api.status(req, _ports)


@bp.function_name("score_range")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE, connection="AzureWebJobsStorage")
def score_range(msg: func.QueueMessage) -> None:
    """Score one range; an exception makes the host retry it, and the last attempt fails the job."""
    from shared.adapters import telemetry
    from shared.scoring.jobs import run_range

    item = msg.get_json()
    with telemetry.scoring_range(item):
        run_range(str(item["job"]), int(item["range"]), _ports(), final_attempt=(msg.dequeue_count or 1) >= MAX_DEQUEUE)
