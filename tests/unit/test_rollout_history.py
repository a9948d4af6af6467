"""The endpoint's rollout history (`engine.history`), on fakes of the ports: every run is kept, even two runs of
the same version (a restart), whose records share their id."""

from __future__ import annotations

from shared.domain.records import RolloutAction, RolloutState
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import clock_of, fake_services
from tests.unit.test_lifecycle_controller import KEY, register, tick_until


def test_a_restarted_rollout_that_ends_keeps_the_earlier_run_of_the_same_version_in_the_history() -> None:
    services = fake_services()
    clock = clock_of(services)  # each run starts at its own time, as it does outside a test
    register(services, "1")
    tick_until(services, "1", "live")
    clock.advance(hours=1)
    register(services, "2")
    engine.act(services, KEY, RolloutAction.ABORT, "ops", "wrong feature set")
    clock.advance(hours=1)
    rule = services.policy.rule_named("churn")
    assert rule is not None and rule.rollout is not None
    engine.start(services, "churn", rule.rollout.model_copy(update={"steps": [100]}), "registry:shared", "churn",
                 "2", "request-1", restart=True)
    for _ in range(10):
        engine.tick(services, KEY)

    runs = [(record.version, record.state) for record in engine.history(services, KEY)]

    assert runs == [("2", RolloutState.SUCCEEDED), ("2", RolloutState.ROLLED_BACK), ("1", RolloutState.SUCCEEDED)]
