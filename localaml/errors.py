"""Answers and refusals in Azure's shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers or {})


class AzureError(Exception):
    """A refusal, answered as Azure ML answers it: status, code, message and nested details."""

    def __init__(
        self, status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None,
        inner: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.inner, self.headers = details or [], inner, headers or {}

    def reply(self) -> Reply:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        if self.inner:
            error["innerError"] = self.inner
        return Reply(self.status, {"error": error}, self.headers)


def user_error(message: str, inner_code: str, *, status: int = 400, target: str | None = None) -> AzureError:
    """Azure ML's usual refusal of a request: code UserError, the specific reason nested inside."""
    detail: dict[str, Any] = {"code": inner_code, "message": message}
    if target:
        detail["target"] = target
    return AzureError(status, "UserError", message, details=[detail], inner={"code": inner_code})
