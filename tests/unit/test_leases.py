"""The lease wrappers retry acquiring only: what their body raises is the body's (issue 14, item 7).

Before, both wrappers yielded inside their retry `try`: a conflict raised by the body was reported
as the wrapper's own "busy", and one whose message said "leased" made the engine's wrapper yield a
second time, running the body twice. A `Busy` the body raises goes out as it is.
"""

from __future__ import annotations

import threading

import pytest

from shared.bootstrap import Services
from shared.domain.people import Person
from shared.domain.ports import Busy, ModelVersion
from shared.domain.records import RolloutState
from shared.ops.models import RolloutFilter
from shared.reactor import lifecycle as controller
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import POLICY, fake_services, fake_state


def test_a_busy_raised_inside_the_endpoint_s_lease_is_the_body_s_and_runs_it_once() -> None:
    services = fake_services()
    runs = []
    conflict = Busy("records/champion is leased by another writer")

    with pytest.raises(Busy) as raised, engine.holding(services, "prod.churn"):
        runs.append(1)
        raise conflict

    assert raised.value is conflict and runs == [1]
    assert ("rollout", "prod.churn") not in fake_state(services).leased


def test_an_endpoint_leased_elsewhere_is_busy_after_the_wait() -> None:
    services = fake_services()
    fake_state(services).leased.add(("rollout", "prod.churn"))

    with pytest.raises(Busy, match="being changed by someone else"), engine.holding(services, "prod.churn",
                                                                                  wait_seconds=0):
        raise AssertionError("the body must not run without the lease")


def test_a_busy_inside_a_lifecycle_s_lease_is_not_reported_as_reconciled_elsewhere() -> None:
    services = fake_services()
    conflict = Busy("the champion changed concurrently")

    with pytest.raises(Busy) as raised, controller._exclusive(services, "churn:1"):
        raise conflict

    assert raised.value is conflict


def test_a_lifecycle_leased_elsewhere_is_busy() -> None:
    services = fake_services()
    fake_state(services).leased.add(("lifecycle", "churn:1"))

    with pytest.raises(Busy, match="reconciled elsewhere"), controller._exclusive(services, "churn:1"):
        raise AssertionError("the body must not run without the lease")


@pytest.mark.parametrize("state", list(RolloutState))
def test_every_state_the_engine_sets_can_be_asked_for(state: RolloutState) -> None:
    """`GET /api/ops/rollouts?state=failed` answered 400 although the engine sets `failed`."""
    assert RolloutFilter.model_validate({"state": state.value}).state is state


def test_a_review_waits_for_a_reconcile_under_way_instead_of_answering_try_again() -> None:
    """The lineage e2e test met a 409 "being reconciled elsewhere" when the resync held the version."""
    services = fake_services(POLICY_WITH_REVIEW)
    register(services)
    fake_state(services).leased.add(("lifecycle", "churn:1"))
    threading.Timer(0.5, fake_state(services).leased.discard, (("lifecycle", "churn:1"),)).start()

    record = controller.review(services, "churn:1", True, BOB, "checked", "request-1")

    assert record.review is not None and record.review.by == "bob@contoso.test"
    assert record.stage.value in ("promoted", "rolling_out")


def test_a_review_answers_with_what_its_decision_did_when_a_reconcile_takes_the_version_in_between() -> None:
    """The control room told bob "churn v1 is awaiting review" right after he approved it: the resync took the
    version between the recorded decision and the review's own reconcile, which gave up at once."""
    services = fake_services(POLICY_WITH_REVIEW)
    register(services)
    state = fake_state(services)

    class TakenOnRelease(set[tuple[str, str]]):
        """The leases held, where another reconciler takes churn:1 the moment the review lets it go."""

        def discard(self, item: tuple[str, str]) -> None:
            super().discard(item)
            if item == ("lifecycle", "churn:1") and not hasattr(self, "taken"):
                self.taken = True
                self.add(item)
                threading.Timer(0.3, set.discard, (self, item)).start()

    state.leased = TakenOnRelease(state.leased)
    record = controller.review(services, "churn:1", True, BOB, "checked", "request-1")

    assert state.leased.taken  # type: ignore[attr-defined]
    assert record.stage.value in ("promoted", "rolling_out")


def test_a_recorded_decision_stands_when_its_reconcile_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    services = fake_services(POLICY_WITH_REVIEW)
    register(services)

    def busy(*args: object, **kwargs: object) -> str:
        raise Busy("lifecycle churn:1 is being reconciled elsewhere")

    monkeypatch.setattr(controller, "reconcile", busy)
    record = controller.review(services, "churn:1", True, BOB, "checked", "request-1")

    assert record.stage.value == "awaiting_review" and record.review is not None and record.review.approved


BOB = Person(oid="oid-bob", name="Bob", roles=frozenset({"MLOps.Approver"}), upn="bob@contoso.test")
POLICY_WITH_REVIEW = POLICY.replace("    promotion:", "    review: {four_eyes: false}\n    promotion:")


def register(services: Services) -> None:
    rule = services.policy.rule_named("churn")
    assert rule is not None and rule.review is not None
    model = ModelVersion(location="dev", name="churn", version="1", uri="azureml:churn:1")
    controller.start_testing(services, rule, model, "event-1")
    controller.reconcile(services, "churn:1", "event-1")
    assert services.state.lifecycles.get("churn:1").stage.value == "awaiting_review"  # type: ignore[union-attr]
