"""Every number of a plan, the policy and an admin request has bounds; infinity and NaN are refused
with the field named."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest
from pydantic import ValidationError

from shared.domain.policy import (
    MAX_SECONDS,
    DriftRule,
    Gate,
    HealthGates,
    MirrorPhase,
    PolicyError,
    RolloutPlan,
    parse_policy,
)
from shared.ops.errors import ApiError
from shared.ops.http import parse
from shared.ops.routes import ROUTES

PLAN = {"workspace": "prod", "endpoint": "credit-risk"}
START = {"model": {"location": "registry:shared", "name": "credit-risk", "version": "3"}, "rule": "credit-risk"}
HUGE = 10**100


def start_rollout(raw: str) -> ApiError:
    route = next(r for r in ROUTES if r.function == "ops_rollouts" and r.method == "POST")
    request = func.HttpRequest(method="POST", url="http://host/api/ops/rollouts", headers={}, params={},
                               route_params={}, body=raw.encode())
    with pytest.raises(ApiError) as caught:
        parse(route, request)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize("value", ["1e18", "1e999", "-1e999", str(MAX_SECONDS + 1), "-1", str(HUGE)])
@pytest.mark.parametrize("field", ["retire_previous_after_seconds", "bake_seconds"])
def test_a_rollout_request_with_seconds_out_of_bounds_is_refused_naming_the_field(field: str, value: str) -> None:
    raw = json.dumps({**START, "plan": {**PLAN, field: 0}}).replace(f'"{field}": 0', f'"{field}": {value}')
    error = start_rollout(raw)
    assert error.field == f"plan.{field}"
    assert error.message.startswith(f"plan.{field}: ")


def test_json_1e999_is_infinity_and_is_refused_as_not_finite() -> None:
    raw = json.dumps({**START, "plan": {**PLAN, "mirror": {"percent": 10, "bake_seconds": 0}}})
    error = start_rollout(raw.replace('"bake_seconds": 0', '"bake_seconds": 1e999'))
    assert error.field == "plan.mirror.bake_seconds" and "finite number" in error.message


def test_the_upper_bound_itself_is_accepted() -> None:
    plan = RolloutPlan(**PLAN, bake_seconds=MAX_SECONDS, retire_previous_after_seconds=MAX_SECONDS)
    assert plan.retire_previous_after_seconds == MAX_SECONDS


@pytest.mark.parametrize(("model", "values", "field"), [
    (RolloutPlan, {**PLAN, "failure_limit": 101}, "failure_limit"),
    (RolloutPlan, {**PLAN, "inconclusive_limit": 1001}, "inconclusive_limit"),
    (RolloutPlan, {**PLAN, "inconclusive_limit": HUGE}, "inconclusive_limit"),
    (RolloutPlan, {**PLAN, "steps": [HUGE]}, "steps"),
    (RolloutPlan, {**PLAN, "manual_gates": [HUGE]}, None),
    (RolloutPlan, {**PLAN, "retire_previous_after_seconds": float("nan")}, "retire_previous_after_seconds"),
    (MirrorPhase, {"percent": 10, "bake_seconds": float("inf")}, "bake_seconds"),
    (HealthGates, {"max_error_rate": float("nan")}, "max_error_rate"),
    (HealthGates, {"max_latency_p95_ms": float("inf")}, "max_latency_p95_ms"),
    (HealthGates, {"max_latency_p99_ms": 3_600_001}, "max_latency_p99_ms"),
    (HealthGates, {"min_requests": 1_000_001}, "min_requests"),
    (Gate, {"metric": "auc", "min": float("-inf")}, "min"),
    (Gate, {"metric": "auc", "max": 1e13}, "max"),
    (Gate, {"metric": "auc", "max_drop": float("nan")}, "max_drop"),
    (DriftRule, {"monitor": "m", "threshold": float("inf"), "pipeline": "p"}, "threshold"),
    (DriftRule, {"monitor": "m", "threshold": 1e7, "pipeline": "p"}, "threshold"),
])
def test_every_number_of_the_policy_has_bounds(model: Any, values: dict, field: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(values)
    if field:
        assert caught.value.errors()[0]["loc"][0] == field


def test_a_policy_with_an_unbounded_number_is_refused_naming_the_rule_and_field() -> None:
    text = """
rules:
  - name: credit-risk
    models: {name: "credit-risk*"}
    test: {pipeline: model-test}
    rollout: {workspace: prod, endpoint: credit-risk, bake_seconds: .inf}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert "rules[0] (credit-risk).rollout.bake_seconds" in str(caught.value)
    assert "finite" in str(caught.value)


def test_a_traffic_change_names_at_most_the_deployments_an_endpoint_can_have() -> None:
    from shared.ops.models import TrafficChange

    with pytest.raises(ValidationError) as caught:
        TrafficChange(traffic={f"blue-{n:03}": 0 for n in range(21)})
    assert caught.value.errors()[0]["loc"] == ("traffic",)
