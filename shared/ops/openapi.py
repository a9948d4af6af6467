"""The OpenAPI 3.1 document of the admin API, generated from the route table and its
pydantic models (JSON Schema 2020-12, which OpenAPI 3.1 uses as is)."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.ops.models import Error
from shared.ops.routes import ROUTES, Route

REF = "#/components/schemas/{model}"
ERRORS = {
    400: "the request is invalid; `field` names what is wrong",
    401: "no function key, or a wrong one (x-functions-key header or code query parameter)",
    403: "the caller lacks the app role MLOPS_ADMIN_ROLE names",
    404: "the model, endpoint, rollout, rule or item does not exist",
    409: "the change conflicts with the current state (or the endpoint is busy); try again or act differently",
    413: "the body is too large",
    500: "the app is misconfigured or failed; the answer carries a correlation id for the logs",
    503: "the ML platform is busy or unavailable; retry after Retry-After seconds",
}


@functools.cache
def document() -> dict[str, Any]:
    refs, schemas = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault("/" + route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MLOps admin API", "version": "1",
            "description": "Roll out, promote, retrain and inspect, by hand. Every change is audited.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
    }


def _schemas() -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """A $ref per body and response model, and every schema they use."""
    models = {route.body for route in ROUTES if route.body and not route.text_body} | {
        route.response for route in ROUTES if route.response} | {Error}
    keyed, top = models_json_schema(
        [(model, "validation" if _is_input(model) else "serialization") for model in models if model],
        ref_template=REF,
    )
    return {model: schema for (model, _), schema in keyed.items()}, top.get("$defs", {})


def _is_input(model: type[BaseModel]) -> bool:
    return any(model is route.body for route in ROUTES)


def _operation(route: Route, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    parameters = _parameters(route.params, "path") + _parameters(route.query, "query")
    if parameters:
        operation["parameters"] = parameters
    if route.text_body:
        operation["requestBody"] = {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}
    elif route.body:
        required = any(field.is_required() for field in route.body.model_fields.values())
        operation["requestBody"] = {"required": required, "content": {"application/json": {"schema": refs[route.body]}}}
    answer = refs[route.response] if route.response else {"type": "object"}
    responses: dict[str, Any] = {str(route.status): _json("success", answer)}
    if route.status_of:
        responses["503"] = _json("unhealthy: see which check failed", answer)
    responses["401"] = {"description": ERRORS[401]}
    for status in sorted({*route.errors, 403, 500}):
        responses.setdefault(str(status), _json(ERRORS[status], refs[Error]))
    operation["responses"] = responses
    return operation


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, field in schema["properties"].items():
        field = _without_null(field)
        parameter = {"name": name, "in": where, "required": name in required or where == "path", "schema": field}
        if "description" in field:
            parameter["description"] = field.pop("description")
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent rather than null; its schema is the non-null branch."""
    schema = {key: value for key, value in schema.items() if key != "title"}
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}
