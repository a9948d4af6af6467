"""One admin API operation: where it is served, who may call it, what it takes and answers (the route table
and the OpenAPI document both read it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from shared.domain.people import Role


@dataclass(frozen=True)
class Elevated:
    """Requests of a route that need a higher role than the route's: `when` says which, for people."""

    role: Role
    when: str
    applies: Callable[..., bool]  # of the route's validated inputs, in order


@dataclass(frozen=True)
class Route:
    """One operation: where it is served, what it takes, what it answers."""

    method: str
    path: str
    function: str  # the HTTP function serving this path (shared by the path's routes)
    summary: str
    handler: Callable[..., Any]
    response: type[BaseModel] | None
    params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    text_body: bool = False  # the raw body is the model's `text` field (policy YAML)
    status: int = 200
    errors: tuple[int, ...] = (400,)
    status_of: Callable[[Any], int] | None = None
    role: Role | None = Role.READER  # None: no person is needed (the function key, or nothing at all)
    key: bool = False  # the Functions host asks for the function key (a machine's route)
    elevated: Elevated | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def inputs(self) -> list[type[BaseModel]]:
        """The input models in the order the handler takes them (after `services`)."""
        return [model for model in (self.params, self.query, self.body) if model is not None]
