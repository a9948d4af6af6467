"""The review gate through the lifecycle controller, on fakes of the ports and a fake clock: a week's wait
for a reminder and an expiry takes no time, and the resync drives them as the timer does.

The approval flow over real HTTP (the app role, four eyes, the answers) stays in `tests/e2e/test_review.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.bootstrap import Services
from shared.domain import lifecycle as machine
from shared.domain.people import Person
from shared.domain.policy import parse_policy
from shared.domain.records import Lifecycle, Stage
from shared.reactor import lifecycle, reactions
from shared.settings import Settings
from tests.unit.test_isolation_fakes import POLICY, START, clock_of, fake_services
from tests.unit.test_lifecycle_controller import register

ROLE = "MLOps.Approver"
ALICE, BOB, CAROL = "alice@contoso.test", "bob@contoso.test", "carol@contoso.test"
WITH_REVIEW = POLICY.replace(
    "    promotion:", f"    review: {{approvers: {ROLE}, four_eyes: true, expires_after: 7d, remind_after: 1d}}\n"
                     "    promotion:")
BY_TAG = WITH_REVIEW.replace("remind_after: 1d}", "remind_after: 1d, by_tag: true}")


def person(upn: str | None, *roles: str, oid: str = "") -> Person:
    """A caller as their verified token shows them."""
    return Person(oid=oid or f"oid-of-{upn}", name=str(upn).split("@")[0].title(), roles=frozenset(roles), upn=upn)


@pytest.fixture
def services() -> Services:
    return fake_services(WITH_REVIEW)


def registered(services: Services, version: str = "1", by: str = ALICE) -> str:
    """`by` registers the version; it passes its gates and waits for review. Its key."""
    services.platform.registrants[("churn", version)] = by  # type: ignore[attr-defined]
    register(services, version)
    assert record(services, version).stage is Stage.AWAITING_REVIEW
    return machine.key_of("churn", version)


def record(services: Services, version: str = "1") -> Lifecycle:
    found = services.state.lifecycles.get(f"churn:{version}")
    assert found is not None
    return found


def told(services: Services, kind: str) -> list[str]:
    """The titles of the notifications of `kind` sent, each once."""
    return [n.title for n in services.notifier.sent.values() if n.kind == kind]  # type: ignore[attr-defined]


def reasons(services: Services, version: str = "1") -> list[str]:
    return [entry.reason for entry in record(services, version).history]


def in_registry(services: Services, version: str = "1") -> bool:
    return ("registry:shared", "churn", version) in services.platform.copies  # type: ignore[attr-defined]


def test_a_version_that_passes_waits_for_review_from_the_clock_s_now(services: Services) -> None:
    clock_of(services).advance(minutes=5)
    registered(services)

    waiting = record(services)
    assert waiting.awaiting_since == START + timedelta(minutes=5) and waiting.registered_by == ALICE
    assert services.platform.tags[("churn", "1")][machine.TAG] == "awaiting_review"  # type: ignore[attr-defined]
    assert told(services, "model.awaiting_review") == ["churn v1 waits for review"]
    assert not in_registry(services) and services.state.rollouts.get("prod.churn") is None


def test_ops_are_reminded_once_after_a_day_and_the_version_expires_after_a_week(services: Services) -> None:
    clock = clock_of(services)
    registered(services)

    clock.advance(hours=23, minutes=59)
    reactions.resync(services)
    assert not record(services).reminded and len(told(services, "model.awaiting_review")) == 1

    clock.advance(minutes=1)
    assert reactions.resync(services)["churn:1"] == "awaiting_review"
    assert record(services).reminded
    assert told(services, "model.awaiting_review")[1] == "Reminder: churn v1 has waited 24.0 h for review"

    clock.advance(days=5, hours=23)
    reactions.resync(services)
    assert record(services).stage is Stage.AWAITING_REVIEW
    assert [reason for reason in reasons(services) if reason.startswith("reminded")] == ["reminded after 24.0 h"]

    clock.advance(hours=1)
    assert lifecycle.reconcile(services, "churn:1", "resync") == "expired"
    assert reasons(services)[-1] == "not reviewed within 7.0 days"
    assert told(services, "model.expired") == ["churn v1 expired unreviewed"]
    assert services.platform.tags[("churn", "1")][machine.TAG] == "expired"  # type: ignore[attr-defined]
    assert not in_registry(services)

    clock.advance(days=30)
    assert "churn:1" not in reactions.resync(services), "an expired version is no longer watched"


def test_an_approver_other_than_the_registrant_approves_and_the_version_moves_on_at_once(services: Services) -> None:
    key = registered(services)
    clock_of(services).advance(hours=3)

    with pytest.raises(lifecycle.ReviewRefused, match=ROLE) as without_role:
        lifecycle.review(services, key, True, person(BOB), "checked", "request-1")
    with pytest.raises(lifecycle.ReviewRefused, match="four eyes") as own:
        lifecycle.review(services, key, True, person(ALICE, ROLE), "checked", "request-2")
    assert (without_role.value.status, own.value.status) == (403, 403) and not in_registry(services)

    approved = lifecycle.review(services, key, True, person(BOB, ROLE), "checked the gates", "request-3")

    assert approved.stage is Stage.ROLLING_OUT and approved.review is not None
    assert (approved.review.by, approved.review.via, approved.review.at) == (BOB, "api", START + timedelta(hours=3))
    assert approved.review.by_oid == f"oid-of-{BOB}"
    copy = services.platform.copies[("registry:shared", "churn", "1")]  # type: ignore[attr-defined]
    assert copy["mlops.approved_by"] == BOB
    with pytest.raises(lifecycle.ReviewRefused, match="not awaiting_review") as again:
        lifecycle.review(services, key, True, person(BOB, ROLE), "twice", "request-4")
    assert again.value.status == 409


def test_a_version_rejected_through_the_api_never_reaches_the_registry(services: Services) -> None:
    key = registered(services)

    rejected = lifecycle.review(services, key, False, person(BOB, ROLE), "drift on segment B", "request-1")

    assert rejected.stage is Stage.REJECTED and not in_registry(services)
    assert services.platform.tags[("churn", "1")][machine.TAG] == "rejected"  # type: ignore[attr-defined]
    assert told(services, "model.rejected") == ["churn v1 rejected in review"]
    assert reasons(services)[-1] == f"rejected by {BOB} (api): drift on segment B"


def test_a_token_without_a_upn_cannot_show_four_eyes_so_it_cannot_approve(services: Services) -> None:
    key = registered(services)
    with pytest.raises(lifecycle.ReviewRefused, match="names no user principal") as refused:
        lifecycle.review(services, key, True, person(None, ROLE), "checked", "request-1")
    assert refused.value.status == 403 and record(services).review is None


def test_an_admin_is_not_an_approver(services: Services) -> None:
    key = registered(services)
    with pytest.raises(lifecycle.ReviewRefused, match=ROLE):
        lifecycle.review(services, key, True, person(CAROL, "MLOps.Admin"), "checked", "request-1")


def test_without_by_tag_a_tag_set_in_studio_decides_nothing(services: Services) -> None:
    registered(services)
    services.platform.tag_in_studio("churn", "1", CAROL, {"mlops.review": "approved"})  # type: ignore[attr-defined]
    assert reactions.resync(services)["churn:1"] == "awaiting_review" and record(services).review is None


def test_a_tag_set_in_studio_decides_at_the_next_resync_but_not_the_registrant_s_own_approval() -> None:
    services = fake_services(BY_TAG)
    own, other = registered(services, "1"), registered(services, "2")
    services.platform.tag_in_studio("churn", "1", ALICE, {"mlops.review": "approved"})  # type: ignore[attr-defined]
    services.platform.tag_in_studio("churn", "2", CAROL, {"mlops.review": "approved"})  # type: ignore[attr-defined]

    results = reactions.resync(services)

    assert (results[own], results[other]) == ("awaiting_review", "rolling_out")
    approval = record(services, "2").review
    assert approval is not None and (approval.by, approval.via) == (CAROL, "tag") and in_registry(services, "2")
    assert approval.reason.endswith("(by tag, role not verified)") and approval.by_oid is None
    assert record(services, "1").refused_approval_by == ALICE and not in_registry(services, "1")
    reactions.resync(services)
    refused = [reason for reason in reasons(services, "1") if reason.startswith("approval by tag refused")]
    assert refused == [f"approval by tag refused: {ALICE} registered the version (four eyes)"], "recorded once"


def test_a_rejection_by_tag_rejects_even_from_the_registrant() -> None:
    services = fake_services(BY_TAG)
    registered(services)
    services.platform.tag_in_studio("churn", "1", ALICE, {"mlops.review": "rejected"})  # type: ignore[attr-defined]

    assert lifecycle.reconcile(services, "churn:1", "resync") == "rejected"
    rejection = record(services).review
    assert rejection is not None and (rejection.by, rejection.via, rejection.approved) == (ALICE, "tag", False)


def test_a_waiting_version_is_promoted_once_its_rule_no_longer_requires_review(services: Services) -> None:
    registered(services)
    services._policy = parse_policy(POLICY)

    assert lifecycle.reconcile(services, "churn:1", "resync") == "rolling_out"
    assert in_registry(services) and record(services).review is None


def test_outside_the_unit_tests_the_services_read_the_real_time_in_utc() -> None:
    """The e2e review tests no longer wait for a real expiry: the app's own wiring is the real clock."""
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    before = datetime.now(UTC)
    now = Services.from_settings(settings).clock()
    assert now.tzinfo is not None and before <= now <= datetime.now(UTC)
