"""The lease wrappers retry acquiring only: what their body raises is the body's (issue 14, item 7).

Before, both wrappers yielded inside their retry `try`: a `Conflict` raised by the body was reported
as "busy" (RolloutBusy, TryLater), and one whose message said "leased" made the engine's wrapper
yield a second time, running the body twice.
"""

from __future__ import annotations

import pytest

from shared.lifecycle import controller
from shared.ops.models import RolloutFilter
from shared.platform.port import TryLater
from shared.records import RolloutState
from shared.rollout import engine
from shared.storage.state import Conflict
from tests.unit.test_isolation_fakes import fake_services


def test_a_conflict_raised_inside_the_endpoint_s_lease_is_the_body_s_and_runs_it_once() -> None:
    services = fake_services()
    runs = []

    with pytest.raises(Conflict, match="leased"), engine.holding(services, "prod.churn"):
        runs.append(1)
        raise Conflict("records/champion is leased by another writer")

    assert runs == [1]
    assert ("rollout", "prod.churn") not in services.state.leased  # type: ignore[attr-defined]


def test_an_endpoint_leased_elsewhere_is_busy_after_the_wait() -> None:
    services = fake_services()
    services.state.leased.add(("rollout", "prod.churn"))  # type: ignore[attr-defined]

    with pytest.raises(engine.RolloutBusy), engine.holding(services, "prod.churn", wait_seconds=0):
        raise AssertionError("the body must not run without the lease")


def test_a_conflict_inside_a_lifecycle_s_lease_is_not_reported_as_reconciled_elsewhere() -> None:
    services = fake_services()

    with pytest.raises(Conflict) as raised, controller._exclusive(services, "churn:1"):
        raise Conflict("the champion changed concurrently")

    assert not isinstance(raised.value, TryLater)


def test_a_lifecycle_leased_elsewhere_is_try_later() -> None:
    services = fake_services()
    services.state.leased.add(("lifecycle", "churn:1"))  # type: ignore[attr-defined]

    with pytest.raises(TryLater, match="reconciled elsewhere"), controller._exclusive(services, "churn:1"):
        raise AssertionError("the body must not run without the lease")


@pytest.mark.parametrize("state", list(RolloutState))
def test_every_state_the_engine_sets_can_be_asked_for(state: RolloutState) -> None:
    """`GET /api/ops/rollouts?state=failed` answered 400 although the engine sets `failed`."""
    assert RolloutFilter.model_validate({"state": state.value}).state is state
