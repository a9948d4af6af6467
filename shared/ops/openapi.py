"""The OpenAPI 3.1 document of every HTTP surface of the app, from the models it validates
with (JSON Schema 2020-12, which OpenAPI 3.1 uses as is): the admin API from its route table,
the scoring API (`shared.scoring.api`), the control room's page and files, and the two
extension webhooks the Functions host serves for the app's Event Grid and blob triggers.
Every error the app answers has one schema, `Error` (`shared.ops.respond`); the webhooks'
refusals are the host's own plain text. A test walks the function app's HTTP functions and
finds each of them here, with its methods."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.ops.respond import Error
from shared.scoring.api import JobPath, ScoringJob
from shared.scoring.request import ScoringRequest

if TYPE_CHECKING:
    from shared.ops.route import Route

REF = "#/components/schemas/{model}"
ERRORS = {
    400: "the request is invalid; `field` names what is wrong",
    401: "no verified Entra ID access token for the app (Authorization: Bearer); a function key names no one",
    403: "the signed-in person's token lacks the app role the operation needs (the answer names it)",
    404: "the model, endpoint, rollout, rule or item does not exist",
    409: "the change conflicts with the current state (or the endpoint is busy); try again or act differently",
    413: "the body is too large",
    500: "the app is misconfigured or failed; the answer carries a correlation id for the logs",
    503: "the ML platform is busy or unavailable; retry after Retry-After seconds",
}
HOST = [{"url": "/"}]  # the extension webhooks are the host's, outside /api
EVENT_GRID_EVENTS = {"type": "array", "items": {"type": "object"}, "description": "Event Grid or CloudEvents 1.0"}


@functools.cache
def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The document of `routes` (the admin API's table, `shared.ops.routes.ROUTES`) and the app's other routes."""
    refs, schemas = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault("/" + route.path, {})[route.method.lower()] = _operation(route, refs)
    paths |= _scoring(refs) | _controlroom(refs) | _webhooks()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aml-reactor HTTP API", "version": "1",
            "description": "The admin API: roll out, promote, retrain and inspect, by hand (every change is "
                           "audited); batch scoring; the control room; the webhooks Event Grid delivers to. "
                           "Every error of the app is an `Error`, with the request's `x-correlation-id`.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "entra": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                          "description": "an Entra ID v2 access token for the app's registration (scope "
                                         "`<client id>/.default`; GET ops/signin says where to sign in); an "
                                         "operation's requirement lists the app role it needs"},
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
                "systemKey": {"type": "apiKey", "in": "query", "name": "code",
                              "description": "the extension's system key (eventgrid_extension, blobs_extension)"},
            },
        },
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
    }


def _schemas(routes: Sequence[Route]) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """A $ref per body and response model, and every schema they use."""
    models: set[type[BaseModel]] = {route.body for route in routes if route.body and not route.text_body} | {
        route.response for route in routes if route.response} | {Error, ScoringRequest, ScoringJob}
    inputs = {ScoringRequest} | {route.body for route in routes if route.body}
    keyed, top = models_json_schema(
        [(model, "validation" if model in inputs else "serialization") for model in models],
        ref_template=REF,
    )
    return {model: schema for (model, _), schema in keyed.items() if issubclass(model, BaseModel)}, top.get("$defs", {})


def _operation(route: Route, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "tags": ["admin"], "summary": route.summary}
    if route.role is not None:
        # OpenAPI 3.1: for a scheme other than oauth2 the array may list the roles the operation needs.
        operation["security"] = [{"entra": [route.role.value]}]
        operation["x-app-role"] = route.role.value
        if route.elevated:
            operation["x-app-role-elevated"] = {"role": route.elevated.role.value, "when": route.elevated.when}
            operation["description"] = f"Needs {route.elevated.role.value} when {route.elevated.when}."
    elif not route.key:
        operation["security"] = []
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
    if route.role is not None:
        responses["401"] = _json(ERRORS[401], refs[Error])
    elif route.key:
        responses["401"] = {"description": "the host's: no function key, or a wrong one"}
    for status in sorted({*route.errors, *((403,) if route.role else ()), 500}):
        responses.setdefault(str(status), _json(ERRORS[status], refs[Error]))
    operation["responses"] = responses
    return operation


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template="{model}")
    required = set(schema.get("required", []))
    parameters = []
    for name, field in schema["properties"].items():
        field = _without_null(field)
        if "$ref" in field:  # an enum: parameters carry their schema inline
            field = {**schema["$defs"][field.pop("$ref")], **field}
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


def _errors(refs: dict[type[BaseModel], dict[str, Any]], descriptions: dict[int, str]) -> dict[str, Any]:
    """401 (the host's, no body) and each error status with the one error schema."""
    answers: dict[str, Any] = {"401": {"description": ERRORS[401]}}
    for status, description in sorted(descriptions.items()):
        answers[str(status)] = _json(description, refs[Error])
    return answers


def _scoring(refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    job = _json("the job's status", refs[ScoringJob])
    submitted = {**_json("the job is queued (or was already: same input, model and output)", refs[ScoringJob]),
                 "headers": {"Location": {"schema": {"type": "string"}, "description": "its status URL"}}}
    return {
        "/score": {"post": {
            "operationId": "score_submit", "tags": ["scoring"],
            "summary": "Score a blob with an ONNX model (registered or in a blob), in ranges, in parallel",
            "requestBody": {"required": True, "content": {"application/json": {"schema": refs[ScoringRequest]}}},
            "responses": {"202": submitted, **_errors(refs, {
                400: ERRORS[400] + " (several: `problems`); the input or the model does not fit the request",
                500: ERRORS[500], 502: "the Azure ML batch endpoint refused the hand-off of a large input",
                503: ERRORS[503]})},
        }},
        "/score/{job_id}": {"get": {
            "operationId": "score_status", "tags": ["scoring"], "summary": "A scoring job's progress",
            "parameters": _parameters(JobPath, "path"),
            "responses": {"200": job, **_errors(refs, {
                400: "`job_id` is no job id", 404: "no such scoring job", 500: ERRORS[500]})},
        }},
    }


def _controlroom(refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    return {
        "/ops/controlroom": {"get": {
            "operationId": "ops_controlroom", "tags": ["control room"],
            "summary": "The control room page (it signs you in with Entra ID)", "security": [],
            "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }},
        "/ops/controlroom/{asset}": {"get": {
            "operationId": "ops_controlroom_asset", "tags": ["control room"],
            "summary": "One of the page's script, style or icon files",
            "security": [],
            "parameters": [{"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file", "content": {"*/*": {"schema": {"type": "string"}}}},
                          "404": _json("the control room has no such file", refs[Error])},
        }},
    }


def _webhooks() -> dict[str, Any]:
    """The host's Event Grid and blob extension webhooks, for `aml_events` and `score_blob`."""
    return {
        "/runtime/webhooks/eventgrid": _webhook("aml_events", "Azure ML events, for aml_events"),
        "/runtime/webhooks/blobs": _webhook("Host.Functions.score_blob", "BlobCreated events, for score_blob"),
    }


def _webhook(function: str, what: str) -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    query = [
        {"name": "functionName", "in": "query", "required": True, "schema": {"const": function}},
        {"name": "code", "in": "query", "required": True, "schema": {"type": "string"}},
    ]
    kind = {"name": "aeg-event-type", "in": "header", "schema": {
        "enum": ["Notification", "SubscriptionValidation", "Unsubscribe"], "default": "Notification"}}
    validation = {"type": "object", "properties": {"validationResponse": {"type": "string"}}}
    return {
        "servers": HOST,
        "post": {
            "operationId": f"webhook_{function.rsplit('.', 1)[-1]}", "tags": ["webhooks"],
            "summary": f"{what}: one invocation per event; Event Grid redelivers on a 5xx",
            "security": [{"systemKey": []}], "parameters": [*query, kind],
            "requestBody": {"required": True, "content": {"application/json": {"schema": EVENT_GRID_EVENTS}}},
            "responses": {
                "200": _json("SubscriptionValidation: the validation code", validation),
                "202": {"description": "every invocation succeeded (a bad event is recorded, not refused)"},
                "400": {"description": "the host's: the body is not a JSON array of events", "content": text},
                "401": {"description": "no system key for the extension, or a wrong one"},
                "500": {"description": "an invocation failed; Event Grid redelivers", "content": text},
            },
        },
        "options": {
            "operationId": f"webhook_{function.rsplit('.', 1)[-1]}_validation", "tags": ["webhooks"],
            "summary": "CloudEvents 1.0 abuse protection: allows the origin that asks",
            "security": [{"systemKey": []}],
            "parameters": [*query, {"name": "WebHook-Request-Origin", "in": "header", "required": True,
                                    "schema": {"type": "string"}}],
            "responses": {"200": {"description": "allowed (WebHook-Allowed-Origin)"},
                          "400": {"description": "no WebHook-Request-Origin", "content": text}},
        },
    }
