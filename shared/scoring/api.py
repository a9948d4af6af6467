"""The scoring HTTP API (`POST score`, `GET score/{job_id}`): what it takes, answers and refuses.

Errors have the one shape of every HTTP route (`shared.ops.respond`, mapped by
`shared.ops.errors`): a request that fails validation is 400 naming each field, a job
that cannot run as asked 400 naming the field its message starts with, a hand-off the
batch endpoint refuses 502, a busy platform 503 with Retry-After, anything else 500 with
the correlation id that is in the logs. `ScoringJob` is the status document that
`jobs.public` writes, for the OpenAPI document (a test holds the two together).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.ops.errors import ApiError, invalid, response
from shared.ops.respond import correlation_id, json_response
from shared.scoring import jobs
from shared.scoring.errors import HandoffFailed, ScoringError
from shared.scoring.request import OUTPUT_CONTAINERS, ScoringRequest

FIELD = re.compile(r"^(?P<field>[a-z_][a-z0-9_.\[\]]*): ")
JOB_ID_SCHEMA = jobs.JOB_ID.pattern.replace("\\Z", "$")  # JSON Schema's regex has no \Z
JobState = Literal["queued", "running", "completed", "failed", "handing_off", "handed_off"]


class RangeProgress(BaseModel):
    total: int
    done: int


class Handoff(BaseModel):
    """A job handed to the Azure ML batch endpoint: its `[workspace, job name]` and status there."""

    model_config = ConfigDict(extra="allow")

    job: list[str] = Field(description="[workspace, batch job name]")
    endpoint: str
    status: str | None = None


class ScoringJob(BaseModel):
    """A scoring job's progress, as `POST score` (202) and `GET score/{job_id}` answer it."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID_SCHEMA)
    state: JobState
    input: str = Field(description="container/name of the input blob")
    output: str = Field(description="container/path the output is committed to, once completed")
    format: Literal["csv", "parquet"]
    ranges: RangeProgress
    rows_done: int
    rows_per_second: float | None
    bad_rows: int | None
    error: str | None = Field(description="why the job failed")
    manifest: str = Field(description="container/path of the manifest written when the job ends")
    created: str
    started: str | None
    finished: str | None
    handoff: Handoff | None = None


class JobPath(BaseModel):
    job_id: str = Field(pattern=JOB_ID_SCHEMA, description="the job id that `POST score` answered")


def submit(request: func.HttpRequest, ports: Callable[[], jobs.Scoring]) -> func.HttpResponse:
    """`POST score`: 202 with the job's status and `Location`, or an error naming the field."""
    correlation = correlation_id(request.headers)
    try:
        job = jobs.submit(parse(request.get_body() or b"", ports), ports())
    except Exception as error:
        return response(refusal(error), correlation)
    return json_response(202, job, correlation, {"Location": f"/api/score/{job['job_id']}"})


def status(request: func.HttpRequest, ports: Callable[[], jobs.Scoring]) -> func.HttpResponse:
    """`GET score/{job_id}`: 200 with the job's status, 400 for an id no job can have, 404 for an unknown one."""
    correlation = correlation_id(request.headers)
    job_id = request.route_params.get("job_id", "")
    try:
        if not jobs.JOB_ID.match(job_id):
            raise ApiError(400, f"job_id: {job_id[:100]!r} is not a job id (score-<24 hex digits>)", "job_id")
        job = jobs.status(job_id, ports())
        if job is None:
            raise ApiError(404, f"no scoring job {job_id!r}", "job_id")
    except Exception as error:
        return response(error, correlation)
    return json_response(200, job, correlation)


def parse(body: bytes, ports: Callable[[], jobs.Scoring]) -> ScoringRequest:
    """The request, validated; an output container is checked against the settings only when one is named."""
    request = ScoringRequest.model_validate_json(body)
    if request.output.container is None:
        return request
    return ScoringRequest.model_validate_json(body, context={OUTPUT_CONTAINERS: {ports().config.output_container}})


def refusal(error: Exception) -> Exception:
    """Scoring's own refusals as the API errors they answer; any other exception as it is."""
    if isinstance(error, ValidationError):
        return invalid(error, whole="body")
    if isinstance(error, HandoffFailed):
        return ApiError(502, str(error))
    if isinstance(error, ScoringError):
        return ApiError(400, str(error), field_of(str(error)))
    return error


def field_of(message: str) -> str | None:
    """The field a scoring refusal names at its start (`output.container: ...`), if any."""
    match = FIELD.match(message)
    return match["field"] if match else None

