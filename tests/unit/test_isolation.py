"""Each endpoint's tick and each lifecycle's reconcile fails alone: recorded, told once, the others go on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.bootstrap import Services
from shared.domain.decisions import deployment_name
from shared.domain.policy import MAX_SECONDS
from shared.domain.ports import TryLater
from shared.domain.records import RolloutAction
from shared.reactor import outcomes, reactions
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import POLICY, fake_services, fake_state, lifecycle_record

BROKEN = "prod.aaa-broken"  # listed before the healthy endpoint, as Blob Storage lists names

TWO_RULES = POLICY + """
  - name: other
    models: {name: "other*"}
    test: {pipeline: model-test}
    rollout: {workspace: prod, endpoint: other-ep, steps: [100], bake_seconds: 0}
"""


@pytest.fixture
def services() -> Services:
    return fake_services(TWO_RULES)


def rollout_record(services: Services, endpoint: str, model: str, version: str, rule: str, **change: Any) -> dict:
    """A rollout record as `engine.start` writes it, for a deployment that exists on the endpoint (stored as it is,
    however broken `change` makes it)."""
    deployment = deployment_name(model, version)
    services.platform.get_endpoint("prod", endpoint)  # type: ignore[attr-defined]
    services.platform.create_deployment("prod", endpoint, deployment,  # type: ignore[attr-defined]
                                        services.platform.get_model("dev", model, version), None)
    plan = services.policy.rule_named(rule).rollout.model_dump()  # type: ignore[union-attr]
    record = {
        "id": f"{endpoint}/{deployment}", "key": engine.key_for("prod", endpoint), "workspace": "prod",
        "endpoint": endpoint, "deployment": deployment, "rule": rule, "model": model, "version": version,
        "plan": plan, "baseline": {"traffic": {}, "mirror": {}}, "state": "progressing", "phase": "provisioning",
        "step": -1, "target": None, "step_started": None, "failures": 0, "inconclusive": 0, "approved": [],
        "retire_at": None, "retired": False, "started": services.clock().isoformat(), "history": [],
    }
    record.update(change)
    fake_state(services).put("rollout", record["key"], record)
    return record


def errors(services: Services) -> list[tuple[str, str, str]]:
    return [(e.subject, e.action, e.reason) for e in fake_state(services).entries if e.outcome == "error"]


def told(services: Services, kind: str) -> list[Any]:
    return [n for n in services.notifier.sent.values() if n.kind == kind]  # type: ignore[attr-defined]


def test_one_endpoint_whose_tick_raises_does_not_stop_the_others_and_is_reported_once(services: Services) -> None:
    rollout_record(services, "aaa-broken", "churn", "1", "churn", phase="step", step=0,
                   step_started="not a time", target={"traffic": {}, "mirror": {}})
    healthy = rollout_record(services, "other-ep", "other", "1", "other")

    for _ in range(3):
        results = engine.tick_all(services)

    assert results[BROKEN].startswith(f"error: InvalidRecord: rollout/{BROKEN} is not a valid Rollout")
    assert services.state.rollouts.get(healthy["key"]).state == "succeeded"  # type: ignore[union-attr]
    assert services.platform.serving("prod", "other-ep") == {"other-v1": 100}  # type: ignore[attr-defined]
    assert [(subject, action) for subject, action, _ in errors(services)] == [(BROKEN, "rollout")]
    assert "step_started" in errors(services)[0][2]
    [notification] = told(services, outcomes.FAILED)
    assert notification.severity == "error" and BROKEN in notification.title


def test_a_stored_plan_over_the_bounds_finishes_instead_of_overflowing(services: Services) -> None:
    """Records written before the bounds: 1e18 seconds overflowed `timedelta` in `_finish` at every tick."""
    record = rollout_record(services, "aaa-broken", "churn", "1", "churn")
    record["plan"].update(retire_previous_after_seconds=1e18, bake_seconds=float("inf"))
    fake_state(services).put("rollout", record["key"], record)

    for _ in range(3):
        results = engine.tick_all(services)

    assert results == {BROKEN: "succeeded"}
    stored = services.state.rollouts.get(BROKEN)
    assert stored is not None and stored.state == "succeeded" and stored.retire_at is not None
    assert stored.retire_at <= services.clock() + timedelta(seconds=MAX_SECONDS + 60)
    assert errors(services) == []


def test_an_admin_action_on_a_rollout_with_such_a_plan_answers(services: Services) -> None:
    record = rollout_record(services, "aaa-broken", "churn", "1", "churn")
    record["plan"]["retire_previous_after_seconds"] = 1e18
    fake_state(services).put("rollout", record["key"], record)

    assert engine.act(services, BROKEN, RolloutAction.PAUSE, "ada").state == "paused"


def test_a_busy_endpoint_is_not_a_failure_to_report(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    rollout_record(services, "aaa-broken", "churn", "1", "churn")

    def busy(*args: Any) -> None:
        raise TryLater("endpoint updating")

    monkeypatch.setattr(services.platform, "get_endpoint", busy)
    assert engine.tick_all(services)[BROKEN].startswith("later")
    assert errors(services) == [] and told(services, outcomes.FAILED) == []


def test_one_lifecycle_whose_reconcile_raises_does_not_stop_the_others_and_is_reported_once(
        services: Services) -> None:
    for version in ("1", "2"):
        services.state.lifecycles.put(f"churn:{version}", lifecycle_record("churn", version, "testing"))
    services.platform.job_errors["test-churn-v1"] = RuntimeError("the job's record is corrupt")  # type: ignore

    for _ in range(2):
        results = reactions.resync(services)

    assert results["churn:1"] == "error: RuntimeError: the job's record is corrupt"
    assert services.state.lifecycles.get("churn:2").stage in ("rolling_out", "live")  # type: ignore[union-attr]
    assert errors(services) == [("churn:1", "reconcile", "RuntimeError: the job's record is corrupt")]
    [notification] = told(services, outcomes.FAILED)
    assert notification.subject == "churn:1"


def test_a_lifecycle_reconciled_elsewhere_is_left_for_later_without_a_report(services: Services) -> None:
    services.state.lifecycles.put("churn:1", lifecycle_record("churn", "1", "testing"))
    fake_state(services).leased.add(("lifecycle", "churn:1"))

    assert reactions.resync(services)["churn:1"].startswith("later")
    assert errors(services) == [] and told(services, outcomes.FAILED) == []


def test_a_failure_that_cannot_be_recorded_still_lets_the_others_go_on(services: Services,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rollout_record(services, "aaa-broken", "churn", "1", "churn", phase="step", step=0, step_started="bad",
                   target={"traffic": {}, "mirror": {}})
    healthy = rollout_record(services, "other-ep", "other", "1", "other")

    def down(*args: Any) -> None:
        raise ConnectionError("storage is down")

    monkeypatch.setattr(services.state, "audit", down)
    engine.tick_all(services)
    assert services.state.rollouts.get(healthy["key"]).phase != "provisioning"  # type: ignore[union-attr]


def test_an_admin_action_whose_tick_then_fails_is_done_and_the_failure_reported(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    rollout_record(services, "aaa-broken", "churn", "1", "churn", state="paused")

    def broken(*args: Any) -> None:
        raise RuntimeError("unexpected answer")

    monkeypatch.setattr(services.platform, "get_endpoint", broken)
    assert engine.act(services, BROKEN, RolloutAction.RESUME, "ada").state == "progressing"
    assert errors(services) == [(BROKEN, "rollout", "RuntimeError: unexpected answer")]
