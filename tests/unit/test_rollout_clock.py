"""The rollout engine's timing on a fake clock: each step bakes for `bake_seconds` before its analysis, the
previous deployment stays for an undo until `retire_previous_after_seconds` have passed, a resumed step
bakes again, and a manual gate waits however long it takes. Ticks are the timer's; time is the clock's."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.bootstrap import Services
from shared.domain.records import Rollout, RolloutAction, RolloutState
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import POLICY, START, clock_of, fake_services

KEY = engine.key_for("prod", "churn")
TIMED = POLICY.replace("bake_seconds: 0", "bake_seconds: 60").replace(
    "retire_previous_after_seconds: 0", "retire_previous_after_seconds: 3600")
GATED = TIMED.replace("      bake_seconds: 60", "      bake_seconds: 60\n      manual_gates: [100]")
HALF, ALL = {"churn-v0": 50, "churn-v1": 50}, {"churn-v1": 100}


@pytest.fixture
def services() -> Services:
    return fake_services(TIMED)


def started(services: Services) -> None:
    """v1 rolls out over v0, which serves all the endpoint's traffic; the first tick gives it its first step."""
    services.platform.add_serving("churn", "0")  # type: ignore[attr-defined]
    rule = services.policy.rule_named("churn")
    assert rule is not None and rule.rollout is not None
    engine.start(services, rule.name, rule.rollout, "dev", "churn", "1", "event-1")
    engine.tick(services, KEY)


def rollout(services: Services) -> Rollout:
    found = services.state.rollouts.get(KEY)
    assert found is not None
    return found


def serving(services: Services) -> dict[str, int]:
    return services.platform.serving()  # type: ignore[attr-defined,no-any-return]


def measured(services: Services) -> list[datetime]:
    """When each analysis asked for metrics from: the start of the step it judged."""
    return services.platform.measured  # type: ignore[attr-defined,no-any-return]


def deployments(services: Services) -> list[str]:
    return [d.name for d in services.platform.get_endpoint("prod", "churn").deployments]


def finished(services: Services) -> None:
    """Both steps baked and passed: the rollout succeeded at START + 120 s."""
    started(services)
    for _ in range(2):
        clock_of(services).advance(seconds=60)
        engine.tick(services, KEY)
    assert rollout(services).state is RolloutState.SUCCEEDED


def test_each_step_bakes_for_its_bake_seconds_on_the_clock_before_its_analysis(services: Services) -> None:
    clock = clock_of(services)
    started(services)
    assert serving(services) == HALF

    clock.advance(seconds=59)
    engine.tick(services, KEY)
    assert serving(services) == HALF and measured(services) == [], "no analysis before the bake time is over"

    clock.advance(seconds=1)
    engine.tick(services, KEY)
    assert measured(services) == [START] and serving(services) == ALL

    clock.advance(seconds=59)
    engine.tick(services, KEY)
    assert rollout(services).state is RolloutState.PROGRESSING and len(measured(services)) == 1

    clock.advance(seconds=1)
    engine.tick(services, KEY)
    done = rollout(services)
    assert done.state is RolloutState.SUCCEEDED and measured(services) == [START, START + timedelta(seconds=60)]
    assert done.finished == START + timedelta(seconds=120)
    assert done.retire_at == START + timedelta(seconds=120 + 3600)


def test_the_previous_deployment_is_kept_for_an_undo_until_retire_after_then_deleted(services: Services) -> None:
    clock = clock_of(services)
    finished(services)

    clock.advance(seconds=3599)
    engine.tick_all(services)
    assert "churn-v0" in deployments(services) and not rollout(services).retired

    clock.advance(seconds=1)
    engine.tick_all(services)
    assert deployments(services) == ["churn-v1"] and rollout(services).retired
    with pytest.raises(engine.RolloutError, match="already retired"):
        engine.act(services, KEY, RolloutAction.UNDO, "ada", "too late")


def test_an_undo_in_the_last_second_of_the_grace_period_restores_the_previous_deployment(services: Services) -> None:
    finished(services)
    clock_of(services).advance(seconds=3599)

    undone = engine.act(services, KEY, RolloutAction.UNDO, "ada", "complaints")

    assert undone.state is RolloutState.ROLLED_BACK and serving(services) == {"churn-v0": 100}


def test_a_resumed_step_bakes_again_from_the_moment_it_resumed(services: Services) -> None:
    clock = clock_of(services)
    started(services)
    clock.advance(seconds=30)
    engine.act(services, KEY, RolloutAction.PAUSE, "ada", "error budget")
    clock.advance(hours=1)
    engine.tick(services, KEY)
    assert rollout(services).state is RolloutState.PAUSED and measured(services) == []

    resumed = engine.act(services, KEY, RolloutAction.RESUME, "ada", "ok")
    assert resumed.step_started == START + timedelta(hours=1, seconds=30) and measured(services) == []

    clock.advance(seconds=59)
    engine.tick(services, KEY)
    assert serving(services) == HALF and measured(services) == []
    clock.advance(seconds=1)
    engine.tick(services, KEY)
    assert measured(services) == [resumed.step_started] and serving(services) == ALL


def test_a_manual_gate_waits_however_long_the_clock_moves_until_approved() -> None:
    services = fake_services(GATED)
    started(services)
    clock = clock_of(services)
    clock.advance(seconds=60)
    engine.tick(services, KEY)
    assert rollout(services).state is RolloutState.AWAITING_APPROVAL

    clock.advance(days=30)
    engine.tick_all(services)
    assert rollout(services).state is RolloutState.AWAITING_APPROVAL and serving(services) == HALF

    approved = engine.act(services, KEY, RolloutAction.APPROVE, "ada", "looks good")
    assert approved.state is RolloutState.PROGRESSING and serving(services) == ALL
