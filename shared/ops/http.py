"""Serve one route: verify who calls and their role, validate the request, call the handler, answer JSON.

Every answer carries `x-correlation-id` (the caller's, when it sends a usable one),
which is also the correlation id of what the request writes to the audit trail; errors
have the one shape of `shared.ops.respond`, like every other HTTP route's.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.bootstrap import Services, services
from shared.ops import auth, errors
from shared.ops.errors import ApiError
from shared.ops.handlers import Caller
from shared.ops.respond import correlation_id as correlation_id_of
from shared.ops.respond import error_response, json_response
from shared.ops.route import Route

MAX_BODY_BYTES = 1_000_000
MAX_BODY_DEPTH = 32
# A string runs to its closing quote or, unterminated, to the end: one pass, no backtracking.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[^\[\]{}]+")


def serve(routes: list[Route], request: func.HttpRequest,
          get_services: Callable[[], Services] = services) -> func.HttpResponse:
    """Answer `request` with the route of its method among `routes` (one path's routes)."""
    correlation_id = correlation_id_of(request.headers)
    route = next((route for route in routes if route.method == request.method.upper()), None)
    if route is None:
        allowed = ", ".join(route.method for route in routes)
        return error_response(405, f"use {allowed} on this path", None, correlation_id, {"Allow": allowed})
    try:
        app = get_services()
        person = None
        if route.role is not None:  # who it is comes first: nobody unverified learns what a route accepts
            person = auth.authenticate(request.headers, app.identities)
            auth.authorize(person, route.role)
        inputs = parse(route, request)
        if person is not None and route.elevated and route.elevated.applies(*inputs):
            auth.authorize(person, route.elevated.role)
        result = route.handler(app, *inputs, Caller(person, correlation_id))
        status = route.status_of(result) if route.status_of else route.status
        return json_response(status, result, correlation_id)
    except Exception as error:
        return errors.response(error, correlation_id)


def parse(route: Route, request: func.HttpRequest) -> list[BaseModel]:
    """The route's inputs, validated: path parameters, then the query or the body."""
    inputs = []
    if route.params:
        inputs.append(validate(route.params, dict(request.route_params)))
    if route.query:
        # `code` is the function key when it is passed in the query, not a filter.
        inputs.append(validate(route.query, {k: v for k, v in request.params.items() if k != "code"}))
    if route.body:
        inputs.append(validate(route.body, _body(route, request.get_body() or b"")))
    return inputs


def validate(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    """`model` from `data`, or ApiError 400 naming every field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise errors.invalid(error) from None


def _body(route: Route, raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes", "body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text", "body") from None
    if route.text_body:
        return {"text": text}
    if not text.strip():
        return {}
    if nesting(text) > MAX_BODY_DEPTH:
        raise ApiError(400, f"the body is nested deeper than {MAX_BODY_DEPTH} levels", "body")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except ValueError as error:
        raise ApiError(400, f"the body is not valid JSON: {error}", "body") from None
    if not isinstance(document, dict):
        raise ApiError(400, "the body must be a JSON object", "body")
    return document


def nesting(text: str) -> int:
    """How deep the arrays and objects of JSON `text` nest, counted before parsing (which recurses)."""
    brackets = _BRACKETS.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    steps = (1 if char in "[{" else -1 for char in brackets)
    return max(itertools.accumulate(steps))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")
