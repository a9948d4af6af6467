"""How every exception becomes an HTTP answer: a status, the one error shape of
`shared.ops.respond` (`{"error", "field", "correlation_id"}`) and headers.

Clients read what went wrong and where; they never see a stack trace. Anything
unexpected is logged with the request's correlation id and answered 500 with that id.
Every HTTP route answers its errors through `response` (the admin API, scoring).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import azure.functions as func
from pydantic import ValidationError

from shared.adapters.storage.stores import InvalidRecord
from shared.domain.policy import PolicyError
from shared.domain.ports import Busy, ConfigurationError, NotFound, PlatformError, Transient, TryLater, UnknownLocation
from shared.ops.respond import Problem, error_body, json_response
from shared.reactor.lifecycle import ReviewRefused
from shared.reactor.rollout import RolloutError
from shared.settings import SettingsError

log = logging.getLogger(__name__)
Answer = tuple[int, dict[str, Any], dict[str, str]]


class ApiError(Exception):
    """A request the API refuses, with its status, the field at fault and, if several are, each of them."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 problems: list[Problem] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.problems = status, message, field, problems
        self.headers = headers or {}


def invalid(error: ValidationError, whole: str | None = None) -> ApiError:
    """ApiError 400 naming every field at fault; `whole` names an error of the input as a whole (no field)."""
    problems = [{"field": field_name(item["loc"]) or whole or "", "message": item["msg"]} for item in error.errors()]
    message = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
    return ApiError(400, message, (problems[0]["field"] or None) if problems else whole, problems)


def field_name(loc: tuple[str | int, ...]) -> str:
    """`traffic.blue`, `plan.steps[1]`; a bad dict key is named like the entry it keys."""
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def response(error: Exception, correlation_id: str) -> func.HttpResponse:
    """The HTTP response for an exception raised while serving a request."""
    status, body, headers = answer(error, correlation_id)
    return json_response(status, body, correlation_id, headers)


def answer(error: Exception, correlation_id: str) -> Answer:
    """The HTTP answer for an exception raised while serving a request: status, body, headers."""
    if isinstance(error, InvalidRecord):  # a stored record that does not load: the record's fault, named
        error = ApiError(409, f"the stored record {error.kind}/{error.key} is not valid (field {error.field}); it is "
                              "set aside for ops (GET ops/events/setaside?kind=invalid)", error.field or None)
    status, message, retry_after = _refusal(error, correlation_id)
    field, problems = (error.field, error.problems) if isinstance(error, ApiError) else (None, None)
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else {}
    if isinstance(error, ApiError):
        headers.update(error.headers)
    return status, error_body(message, field, correlation_id, problems), headers


def _refusal(error: Exception, correlation_id: str) -> tuple[int, str, float | None]:
    """The status, message and Retry-After seconds (if the caller should retry) for an exception."""
    if isinstance(error, ApiError):
        return error.status, error.message, None
    if isinstance(error, ReviewRefused):
        return error.status, str(error), None
    if isinstance(error, NotFound | UnknownLocation):
        return 404, str(error), None
    if isinstance(error, RolloutError):
        return 409, str(error), None
    if isinstance(error, TryLater) and error.retry_after is not None:  # the platform throttles: unavailable for now
        return 503, str(error), error.retry_after
    if isinstance(error, Busy):  # held or busy right now: the same request again later
        return 409, f"{error}; try again", error.retry_after
    if isinstance(error, Transient):
        return 503, f"the ML platform failed for now: {error}", 5
    if isinstance(error, ConfigurationError | SettingsError | PolicyError):
        log.error("configuration problem (correlation id %s): %s", correlation_id, error)
        kind = "policy" if isinstance(error, PolicyError) else "settings or identity"
        message = f"the app's {kind} need fixing (see GET ops/health and the logs); correlation id {correlation_id}"
        return 500, message, None
    if isinstance(error, PlatformError):
        # Refusals the adapter raises before any request are ValueErrors (a 400); others are the service's word.
        return (400 if isinstance(error, ValueError) else 502), f"the ML platform refused: {error}", None
    log.exception("unexpected error (correlation id %s)", correlation_id, exc_info=error)
    return 500, f"internal error; correlation id {correlation_id}", None
