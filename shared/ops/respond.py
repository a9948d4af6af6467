"""One answer shape for every HTTP route of the app (admin API, scoring, control room).

An answer is JSON and carries `x-correlation-id`: the caller's, when it sends a usable one,
else a new one; the same id goes into what the request logs and audits. An error is

    {"error": "what went wrong", "field": "the input at fault, or null", "correlation_id": "..."}

with `problems` (each `{"field", "message"}`) added when several inputs are at fault. This
module is small on purpose: every HTTP function can import it without the admin API's route
table or the app's services. `shared.ops.errors` maps exceptions onto it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import azure.functions as func
from pydantic import BaseModel, Field

CORRELATION = "x-correlation-id"
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
Problem = dict[str, str]


class FieldProblem(BaseModel):
    field: str = Field(description="the input at fault (`traffic.blue`, `plan.steps[1]`), or `body` for all of it")
    message: str


class Error(BaseModel):
    """Every HTTP route's error answer (the header `x-correlation-id` carries the same id)."""

    error: str = Field(description="what went wrong, for people")
    field: str | None = Field(description="the request field at fault, when there is one")
    correlation_id: str = Field(description="the id of this request in the logs and the audit trail")
    problems: list[FieldProblem] | None = Field(None, description="each field at fault, when several are")


def correlation_id(headers: Mapping[str, str]) -> str:
    """The caller's `x-correlation-id` when it is a short token (it goes into logs and state), else a new one."""
    given = headers.get(CORRELATION) or ""
    return given if _CORRELATION_ID.match(given) else uuid.uuid4().hex


def error_body(message: str, field: str | None, correlation_id: str,
               problems: list[Problem] | None = None) -> dict[str, Any]:
    """The error shape, the same on every route."""
    body: dict[str, Any] = {"error": message, "field": field, "correlation_id": correlation_id}
    if problems:
        body["problems"] = problems
    return body


def json_response(status: int, body: Any, correlation_id: str,
                  headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """`body` (a model, or anything JSON can hold) as the answer, with the correlation id header."""
    document = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return func.HttpResponse(
        json.dumps(document, default=str), status_code=status, mimetype="application/json",
        headers={CORRELATION: correlation_id, **(headers or {})},
    )


def error_response(status: int, message: str, field: str | None, correlation_id: str,
                   headers: Mapping[str, str] | None = None,
                   problems: list[Problem] | None = None) -> func.HttpResponse:
    """An error answer in the one shape."""
    return json_response(status, error_body(message, field, correlation_id, problems), correlation_id, headers)
