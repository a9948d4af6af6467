"""How every exception becomes an HTTP answer: a status, `{"error", "field"}` and headers.

Clients read what went wrong and where; they never see a stack trace. Anything
unexpected is logged with the request's correlation id and answered 500 with that id.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from shared.platform.port import ConfigurationError, NotFound, PlatformError, Transient, TryLater, UnknownLocation
from shared.policy import PolicyError
from shared.rollout.engine import RolloutBusy, RolloutError
from shared.settings import SettingsError
from shared.storage.state import Conflict

log = logging.getLogger(__name__)
Answer = tuple[int, dict[str, Any], dict[str, str]]


class ApiError(Exception):
    """A request the API refuses, with its status and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def answer(error: Exception, correlation_id: str) -> Answer:
    """The HTTP answer for an exception raised while serving a request."""
    if isinstance(error, ApiError):
        return _body(error.status, error.message, error.field)
    if isinstance(error, NotFound | UnknownLocation):
        return _body(404, str(error))
    if isinstance(error, RolloutError | RolloutBusy):
        return _body(409, str(error))
    if isinstance(error, Conflict):
        return _body(409, f"{error}; try again", retry_after=1)
    if isinstance(error, TryLater):
        if error.retry_after is None:
            return _body(409, f"{error}; try again")
        return _body(503, str(error), retry_after=error.retry_after)
    if isinstance(error, Transient):
        return _body(503, f"the ML platform failed for now: {error}", retry_after=5)
    if isinstance(error, ConfigurationError | SettingsError | PolicyError):
        log.error("configuration problem (correlation id %s): %s", correlation_id, error)
        kind = "policy" if isinstance(error, PolicyError) else "settings or identity"
        return _body(500, f"the app's {kind} need fixing (see GET ops/health and the logs); "
                          f"correlation id {correlation_id}")
    if isinstance(error, PlatformError):
        # Refusals the adapter raises before any request are ValueErrors (a 400); others are the service's word.
        return _body(400 if isinstance(error, ValueError) else 502, f"the ML platform refused: {error}")
    log.exception("unexpected error (correlation id %s)", correlation_id, exc_info=error)
    return _body(500, f"internal error; correlation id {correlation_id}")


def _body(status: int, message: str, field: str | None = None, retry_after: float | None = None) -> Answer:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else {}
    return status, {"error": message, "field": field}, headers
