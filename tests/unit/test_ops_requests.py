"""Admin API requests: validation names the field, errors map to statuses, roles are checked."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from shared.adapters.storage.state import CHANGED_RETRY_SECONDS
from shared.domain.ports import Busy, ConfigurationError, NotFound, TryLater, UnknownLocation
from shared.ops import errors
from shared.ops.errors import ApiError
from shared.ops.http import parse
from shared.ops.route import Route
from shared.ops.routes import ROUTES
from shared.reactor import rollout as engine


def route(function: str, method: str) -> Route:
    return next(r for r in ROUTES if r.function == function and r.method == method)


def request(method: str, body: bytes | str = b"", params: dict | None = None, route_params: dict | None = None,
            headers: dict | None = None) -> func.HttpRequest:
    return func.HttpRequest(method=method, url="http://host/api/ops", headers=headers or {}, params=params or {},
                            route_params=route_params or {}, body=body.encode() if isinstance(body, str) else body)


def refusal(route: Route, req: func.HttpRequest) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(route, req)
    assert caught.value.status == 400
    return caught.value


TRAFFIC = {"workspace": "prod", "endpoint": "credit-risk"}


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"traffic": {"blue": "ninety"}}, "traffic.blue", "valid integer"),
    ({"traffic": {"blue": 101}}, "traffic.blue", "less than or equal to 100"),
    ({"traffic": {"blue": 90.5}}, "traffic.blue", "integer"),
    ({"traffic": {"x": 100}}, "traffic.x", "pattern"),
    ({"traffic": {"blue": 100}, "mirror": {"green": 10}}, "mirror", "Extra inputs"),
    ({}, "traffic", "Field required"),
])
def test_a_bad_traffic_body_is_refused_naming_the_field(body: dict, field: str, words: str) -> None:
    error = refusal(route("ops_traffic", "POST"), request("POST", json.dumps(body), route_params=TRAFFIC))
    assert error.field == field
    assert error.message.startswith(f"{field}: ") and words in error.message


@pytest.mark.parametrize(("raw", "words"), [("{bad", "not valid JSON"), ("[1, 2]", "JSON object"),
                                            ('{"traffic": {"blue": NaN}}', "NaN is not a JSON number")])
def test_a_body_that_is_not_a_json_object_is_refused_as_the_body(raw: str, words: str) -> None:
    error = refusal(route("ops_traffic", "POST"), request("POST", raw, route_params=TRAFFIC))
    assert error.field == "body" and words in error.message


@pytest.mark.parametrize("raw", [
    '{"traffic": ' + "[" * 1000 + "]" * 1000 + "}",
    '{"traffic": ' + '{"a": ' * 100_000,
    "[" * 200_000,
])
def test_a_body_nested_too_deep_is_refused_as_the_body(raw: str) -> None:
    error = refusal(route("ops_traffic", "POST"), request("POST", raw, route_params=TRAFFIC))
    assert error.field == "body" and "nested deeper than 32 levels" in error.message


@pytest.mark.parametrize("raw", [
    '{"traffic": {"blue": 100}, "note": "' + "[{" * 5000 + '"}',
    '{"traffic": {"blue": 100}, "note": "\\\"' + "[" * 100 + '"}',
])
def test_brackets_inside_strings_do_not_count_as_nesting(raw: str) -> None:
    error = refusal(route("ops_traffic", "POST"), request("POST", raw, route_params=TRAFFIC))
    assert error.field == "note"


def test_a_huge_integer_in_a_body_is_refused_as_the_body() -> None:
    raw = '{"traffic": {"blue": ' + "9" * 5000 + "}}"
    error = refusal(route("ops_traffic", "POST"), request("POST", raw, route_params=TRAFFIC))
    assert error.field == "body" and "not valid JSON" in error.message


@pytest.mark.parametrize(("params", "field"), [
    ({"workspace": "Prod", "endpoint": "credit-risk"}, "workspace"),
    ({"workspace": "prod", "endpoint": "a"}, "endpoint"),
    ({"workspace": "prod", "endpoint": "x" * 33}, "endpoint"),
    ({"workspace": "prod", "endpoint": "credit%2F..%2Frisk"}, "endpoint"),
    ({"workspace": "prod", "endpoint": "credit-risk", "action": "explode"}, "action"),
])
def test_names_that_go_into_paths_are_checked(params: dict, field: str) -> None:
    params.setdefault("action", "pause")
    error = refusal(route("ops_rollout_action", "POST"), request("POST", route_params=params))
    assert error.field == field


@pytest.mark.parametrize(("name", "version", "field"), [("../etc", "1", "name"), (".hidden", "1", "name"),
                                                         ("credit-risk", "1/2", "version"), ("m" * 129, "1", "name")])
def test_model_names_and_versions_are_safe_for_state_keys(name: str, version: str, field: str) -> None:
    error = refusal(route("ops_lifecycle", "GET"), request("GET", route_params={"name": name, "version": version}))
    assert error.field == field


def test_names_azure_ml_accepts_are_accepted_dots_included() -> None:
    """Azure ML allows `credit-risk..v2`; the state store encodes it, so the API takes it too."""
    (where,) = parse(route("ops_lifecycle", "GET"),
                     request("GET", route_params={"name": "credit-risk..v2", "version": "1"}))
    assert where.name == "credit-risk..v2"


def test_query_filters_are_validated_and_the_key_parameter_is_not_a_filter() -> None:
    audit = route("ops_audit", "GET")
    (query,) = parse(audit, request("GET", params={"code": "secret", "since": "2024-05-01", "limit": "5"}))
    assert query.limit == 5 and query.since.isoformat() == "2024-05-01T00:00:00"
    assert refusal(audit, request("GET", params={"limit": "0"})).field == "limit"
    assert refusal(audit, request("GET", params={"since": "yesterday"})).field == "since"
    assert refusal(audit, request("GET", params={"sort": "time"})).field == "sort"
    assert refusal(route("ops_rollouts", "GET"), request("GET", params={"state": "done"})).field == "state"


def test_a_rollout_plan_in_a_request_is_the_policy_s_plan_with_its_rules() -> None:
    start = route("ops_rollouts", "POST")
    body = {"model": {"location": "dev", "name": "credit-risk", "version": "2"}, "rule": "credit-risk",
            "plan": {"workspace": "prod", "endpoint": "credit-risk", "steps": [50, 10]}}
    error = refusal(start, request("POST", json.dumps(body)))
    assert error.field == "plan.steps" and "increasing" in error.message
    body["plan"] = {"workspace": "prod", "endpoint": "a/b", "steps": [50, 100]}
    error = refusal(start, request("POST", json.dumps(body)))
    assert error.field == "plan" and "plan.endpoint 'a/b'" in error.message
    body["plan"]["endpoint"] = "credit-risk"
    (parsed,) = parse(start, request("POST", json.dumps(body)))
    assert parsed.plan.steps == [50, 100]


def test_optional_bodies_may_be_empty_and_a_policy_draft_is_raw_text() -> None:
    (where, body) = parse(route("ops_rollout_action", "POST"),
                          request("POST", b"", route_params={**TRAFFIC, "action": "pause"}))
    assert where.action == "pause" and body.reason == ""
    (draft,) = parse(route("ops_policy_validate", "POST"), request("POST", "rules: []\n"))
    assert draft.text == "rules: []\n"


@pytest.mark.parametrize(("text", "words"), [
    ("rules: " + "9" * 5000, "line 1, column 8: a number of 5000 characters"),
    ("rules: " + "[" * 1000 + "]" * 1000, "nested deeper than 32 levels"),
    ("rules:\n" + "".join("  " * depth + "- \n" for depth in range(100)), "nested deeper than 32 levels"),
])
def test_a_policy_draft_that_cannot_be_loaded_safely_is_a_400_naming_the_place(text: str, words: str) -> None:
    from shared.ops.handlers import validate_policy

    (draft,) = parse(route("ops_policy_validate", "POST"), request("POST", text))
    with pytest.raises(ApiError) as caught:
        validate_policy(None, draft, None)  # type: ignore[arg-type] - neither is used to validate
    assert caught.value.status == 400 and caught.value.field == "body" and words in caught.value.message


@pytest.mark.parametrize(("error", "status"), [
    (NotFound("no model"), 404),
    # A workspace a request names that the settings do not configure is the caller's 404, not the app's 500.
    (UnknownLocation("workspace 'a' is not in MLOPS_WORKSPACES"), 404),
    (engine.RolloutError("cannot approve"), 409),
    (ApiError(400, "bad", "traffic"), 400),
])
def test_errors_map_to_statuses(error: Exception, status: int) -> None:
    answered, body, _ = errors.answer(error, "cid")
    assert answered == status and body["error"]


@pytest.mark.parametrize(("error", "answer"), [
    # another rollout holds the endpoint, or its lease is held (the rollout engine)
    (Busy("rollout churn/churn-v2 is still active on churn"),
     (409, "rollout churn/churn-v2 is still active on churn; try again", {})),
    # a version being reconciled elsewhere (the lifecycle controller)
    (Busy("lifecycle churn:1 is being reconciled elsewhere"),
     (409, "lifecycle churn:1 is being reconciled elsewhere; try again", {})),
    # a record changed under its writer (the state store): worth trying again at once
    (Busy("lifecycle/churn:1 changed concurrently", CHANGED_RETRY_SECONDS),
     (409, "lifecycle/churn:1 changed concurrently; try again", {"Retry-After": "1"})),
    # the platform: an endpoint busy with another operation, or throttling for a while
    (TryLater("endpoint Updating"), (409, "endpoint Updating; try again", {})),
    (TryLater("throttled", retry_after=2.2), (503, "throttled", {"Retry-After": "3"})),
])
def test_busy_answers_409_or_for_the_platform_s_throttling_503(error: Busy,
                                                               answer: tuple[int, str, dict[str, str]]) -> None:
    status, body, headers = errors.answer(error, "cid")
    assert (status, body["error"], headers) == answer


def test_unexpected_and_configuration_errors_answer_500_without_details() -> None:
    status, body, _ = errors.answer(KeyError("secret internals"), "cid-1")
    assert status == 500 and "secret" not in body["error"] and "cid-1" in body["error"]
    status, body, _ = errors.answer(ConfigurationError("identity 1234 lacks a role on /subscriptions/x"), "cid-2")
    assert status == 500 and "1234" not in body["error"] and "cid-2" in body["error"]
