"""One error shape on every HTTP route (issue 14, item 7): `{"error", "field", "correlation_id"}`
plus the `x-correlation-id` header, from the admin API and the scoring API alike."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from pydantic import BaseModel, Field

from shared.domain.ports import NotFound, Transient
from shared.ops import errors
from shared.ops.errors import ApiError
from shared.ops.http import serve
from shared.ops.respond import CORRELATION, correlation_id, error_response
from shared.ops.route import Route
from shared.scoring import api
from shared.scoring.errors import HandoffFailed, InvalidInput

SHAPE = {"error", "field", "correlation_id"}


def shape(response: func.HttpResponse) -> dict[str, Any]:
    """The error body, checked: the one shape, with the id of the header."""
    body = json.loads(response.get_body())
    assert SHAPE <= set(body) <= SHAPE | {"problems"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["correlation_id"] == response.headers[CORRELATION]
    assert response.mimetype == "application/json"
    return body


def test_a_usable_correlation_id_is_kept_and_any_other_replaced() -> None:
    assert correlation_id({CORRELATION: "req-42:a.b"}) == "req-42:a.b"
    for given in ({}, {CORRELATION: ""}, {CORRELATION: "x" * 65}, {CORRELATION: "a b"}, {CORRELATION: "../x"}):
        made = correlation_id(given)
        assert len(made) == 32 and made != given.get(CORRELATION)


def test_the_helper_answers_the_shape_with_the_header_and_extra_headers() -> None:
    response = error_response(409, "busy; try again", None, "cid-1", {"Retry-After": "1"})
    assert response.status_code == 409 and response.headers["Retry-After"] == "1"
    assert shape(response) == {"error": "busy; try again", "field": None, "correlation_id": "cid-1"}


@pytest.mark.parametrize(("error", "status", "field"), [
    (ApiError(400, "limit: too big", "limit"), 400, "limit"),
    (NotFound("no model m:1"), 404, None),
    (Transient("throttled"), 503, None),
    (RuntimeError("secret detail"), 500, None),
])
def test_every_exception_becomes_the_shape_with_the_correlation_id(error: Exception, status: int,
                                                                    field: str | None) -> None:
    response = errors.response(error, "cid-7")
    body = shape(response)
    assert response.status_code == status and body["field"] == field and body["correlation_id"] == "cid-7"
    assert "secret detail" not in body["error"]


class Body(BaseModel):
    limit: int = Field(ge=1)
    name: str


ROUTES = [Route("POST", "ops/things", "ops_things", "test route", lambda *args: {"ok": True}, None, body=Body,
                role=None)]
SERVICES = SimpleNamespace(settings=SimpleNamespace())


def admin(method: str, body: bytes, headers: dict[str, str] | None = None) -> func.HttpResponse:
    request = func.HttpRequest(method, "/api/ops/things", body=body, headers=headers or {})
    return serve(ROUTES, request, get_services=lambda: SERVICES)  # type: ignore[arg-type, return-value]


def test_the_admin_api_refuses_a_bad_body_naming_every_field_with_the_callers_correlation_id() -> None:
    response = admin("POST", b'{"limit": 0}', {CORRELATION: "caller-1"})
    body = shape(response)
    assert response.status_code == 400 and body["correlation_id"] == "caller-1"
    assert body["field"] == "limit"
    assert [problem["field"] for problem in body["problems"]] == ["limit", "name"]


@pytest.mark.parametrize(("method", "raw", "status", "field"), [
    ("POST", b"{", 400, "body"),
    ("POST", b"\xff", 400, "body"),
    ("POST", b"[" * 100, 400, "body"),
    ("GET", b"", 405, None),
])
def test_the_admin_api_answers_unreadable_bodies_and_wrong_methods_in_the_shape(method: str, raw: bytes, status: int,
                                                                               field: str | None) -> None:
    response = admin(method, raw)
    assert response.status_code == status
    assert shape(response)["field"] == field


class _State:
    def get(self, kind: str, key: str) -> None:
        return None


def ports() -> Any:
    return SimpleNamespace(config=SimpleNamespace(output_container="scoring-output"), state=_State(), platform=None)


def scoring_request(body: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest("POST", "/api/score", body=raw, headers=headers or {})


@pytest.mark.parametrize(("body", "field"), [
    ({"input": "scoring-input/../x.csv", "model": {"blob": "m/x.onnx"}}, "input"),
    ({"input": "scoring-input/x.csv", "model": {"blob": "models/m.onnx"},
      "output": {"container": "azure-webjobs-secrets"}}, "output.container"),
    (b"not json", "body"),
    (b"", "body"),
])
def test_scoring_submit_refuses_a_bad_request_in_the_shape_naming_the_field(body: Any, field: str) -> None:
    response = api.submit(scoring_request(body, {CORRELATION: "caller-2"}), ports)
    answered = shape(response)
    assert response.status_code == 400 and answered["field"] == field and answered["correlation_id"] == "caller-2"
    assert answered["problems"][0]["field"] == field


@pytest.mark.parametrize(("raised", "status", "field"), [
    (InvalidInput("output.container: scoring writes only to 'scoring-output'"), 400, "output.container"),
    (InvalidInput("the model does not name its features"), 400, None),
    (HandoffFailed("the batch endpoint refused the job"), 502, None),
    (Transient("throttled"), 503, None),
    (OSError("storage is down"), 500, None),
])
def test_scoring_submit_answers_what_scoring_raises_in_the_shape(monkeypatch: pytest.MonkeyPatch, raised: Exception,
                                                                status: int, field: str | None) -> None:
    def failing(request: Any, scoring: Any) -> None:
        raise raised

    monkeypatch.setattr(api.jobs, "submit", failing)
    response = api.submit(scoring_request({"input": "scoring-input/x.csv", "model": {"blob": "models/m.onnx"}}), ports)
    assert response.status_code == status
    body = shape(response)
    assert body["field"] == field
    assert "storage is down" not in body["error"]


@pytest.mark.parametrize(("job_id", "status"), [("x..y", 400), ("score-" + "0" * 24, 404)])
def test_scoring_status_answers_a_bad_or_unknown_id_in_the_shape_naming_job_id(job_id: str, status: int) -> None:
    request = func.HttpRequest("GET", f"/api/score/{job_id}", body=b"", route_params={"job_id": job_id})
    response = api.status(request, ports)
    assert response.status_code == status and shape(response)["field"] == "job_id"


def test_scoring_status_of_a_known_job_carries_the_correlation_id_too() -> None:
    job = {"id": "score-" + "1" * 24, "state": "queued", "input": {"container": "i", "name": "a.csv"},
           "output": {"container": "o", "path": "a.csv", "format": "csv"}, "ranges": [[0, 1]], "created": "2026-12-01"}

    class State:
        def get(self, kind: str, key: str) -> dict[str, Any]:
            return dict(job)

    scoring = SimpleNamespace(state=State(), platform=None)
    request = func.HttpRequest("GET", "/x", body=b"", route_params={"job_id": job["id"]}, headers={CORRELATION: "c-9"})
    response = api.status(request, lambda: scoring)  # type: ignore[arg-type, return-value]
    assert response.status_code == 200 and response.headers[CORRELATION] == "c-9"
    assert api.ScoringJob.model_validate_json(response.get_body()).job_id == job["id"]
