"""Every HTTP route of the function app is in the OpenAPI document, with its methods and the
one error schema (issue 14, item 7): the admin API, scoring, the control room, the webhooks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shared.ops.openapi import document
from shared.ops.respond import Error, error_body
from shared.ops.routes import ROUTES, by_function
from shared.scoring.api import ScoringJob
from shared.scoring.jobs import public
from tests.unit.app_index import http_triggers

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def http_functions() -> dict[str, dict[str, Any]]:
    """Each HTTP function's trigger, as the worker indexes function_app.py."""
    return http_triggers()


def openapi_path(route: str) -> str:
    """`score/{job_id}`, `x/{id:int}`, `{*rest}` as OpenAPI writes paths: `/score/{job_id}`."""
    return "/" + re.sub(r"\{\*?(\w+)(?::[^}]*)?\??\}", r"{\1}", route.strip("/"))


def test_every_http_function_is_described_with_its_methods(http_functions: dict[str, dict[str, Any]]) -> None:
    paths = document(ROUTES)["paths"]
    assert {"score_submit", "score_status", "ops_health"} <= set(http_functions)
    for name, trigger in http_functions.items():
        path = openapi_path(trigger.get("route") or name)
        assert path in paths, f"{name}: {path} is not in the OpenAPI document"
        described = set(paths[path]) & METHODS
        declared = {method.lower() for method in trigger.get("methods") or []}
        # An admin function takes every method and answers 405 for those its routes lack.
        served = declared or {route.method.lower() for route in by_function()[name]}
        assert described == served, (name, described, served)
        for method in served:
            operation = paths[path][method]
            assert operation["operationId"] and operation["summary"] and operation["tags"], (name, method)


def test_the_scoring_routes_have_their_models_and_the_error_schema() -> None:
    doc = document(ROUTES)
    submit = doc["paths"]["/score"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/"
                                                                                      "ScoringRequest"}
    assert submit["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScoringJob")
    status = doc["paths"]["/score/{job_id}"]["get"]
    assert [p["name"] for p in status["parameters"]] == ["job_id"]
    assert status["parameters"][0]["schema"]["pattern"] == "^(score|rejected)-[0-9a-f]{24}$"
    for operation, codes in ((submit, {"400", "500", "502", "503"}), (status, {"400", "404", "500"})):
        assert codes <= set(operation["responses"])
        for code in codes:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (operation["operationId"], code)
    assert set(doc["components"]["schemas"]["ScoringRequest"]["required"]) == {"input", "model"}


def test_every_json_error_of_the_app_uses_the_one_error_schema() -> None:
    doc = document(ROUTES)
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "field", "correlation_id"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS or path.startswith("/runtime/"):
                continue
            for code, answer in operation["responses"].items():
                if operation["operationId"] == "health" and code == "503":
                    continue  # not an error: the health document, saying which check failed
                if int(code) >= 400 and code != "401":  # 401 is the host's, before any app code, with no body
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_webhooks_are_described_on_the_hosts_own_paths() -> None:
    paths = document(ROUTES)["paths"]
    eventgrid = paths["/runtime/webhooks/eventgrid"]
    assert eventgrid["servers"] == [{"url": "/"}]
    assert {"post", "options"} <= set(eventgrid)
    names = {p["name"]: p for p in eventgrid["post"]["parameters"]}
    assert names["functionName"]["schema"] == {"const": "aml_events"} and "aeg-event-type" in names
    assert {"200", "202", "400", "401", "500"} == set(eventgrid["post"]["responses"])
    blobs = paths["/runtime/webhooks/blobs"]["post"]["parameters"]
    assert next(p for p in blobs if p["name"] == "functionName")["schema"] == {"const": "Host.Functions.score_blob"}


def test_the_error_schema_is_the_shape_the_helper_writes() -> None:
    assert Error.model_validate(error_body("x: bad", "x", "cid", [{"field": "x", "message": "bad"}]))
    assert set(error_body("m", None, "cid")) == {"error", "field", "correlation_id"}


def test_the_scoring_job_schema_is_what_the_status_route_answers() -> None:
    job = {"id": "score-" + "a" * 24, "state": "running", "input": {"container": "i", "name": "x.csv"},
           "output": {"container": "o", "path": "x.csv", "format": "csv"}, "ranges": [[0, 9], [9, 20]],
           "done": {"0": 5}, "created": "2026-12-01T08:00:00+00:00", "started": "2026-12-01T08:00:01+00:00",
           "bad_rows": 0, "handoff": {"job": ["dev", "batch-1"], "endpoint": "dev/score", "status": "Running"}}
    assert ScoringJob.model_validate(public(job)).ranges.total == 2
