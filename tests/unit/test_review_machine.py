"""The review transitions of the lifecycle state machine, pure: passed -> awaiting_review, then promoted,
rejected or expired, a reminder once, and an approval by tag that four eyes refuses.

`tests/unit/test_review_controller.py` drives the same through the controller on a fake clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.domain import lifecycle as machine
from shared.domain.policy import Review
from shared.domain.ports import ModelVersion
from shared.domain.records import Lifecycle, ReviewDecision, Stage
from tests.unit.test_lifecycle_machine import NOW, lifecycle

ALICE, BOB = "alice@contoso.test", "bob@contoso.test"
DAY = 86400
REVIEW = Review(approvers="MLOps.Approver", four_eyes=True, expires_after=7 * DAY, remind_after=DAY, by_tag=True)
GATES = {"header": ["metric", "check", "value", "threshold", "result"],
         "rows": [["accuracy", ">=", "0.9", "0.8", "pass"]]}


def passed() -> Lifecycle:
    return lifecycle(stage=Stage.PASSED, gates=GATES, test_job_url="https://ml.azure.com/runs/test-churn-v3")


def waiting(**change: Any) -> Lifecycle:
    """Awaiting review since NOW, registered by Alice."""
    return lifecycle(stage=Stage.AWAITING_REVIEW, **{"awaiting_since": NOW, "registered_by": ALICE, **change})


def version(tag: str | None = None, by: str | None = BOB) -> ModelVersion:
    """The version as Azure ML shows it: registered by Alice, changed last by `by` (who set the tag)."""
    return ModelVersion(location="dev", name="churn", version="3", uri="azureml:churn:3", created_by=ALICE,
                        modified_by=by, job_name="train-7", tags={"mlops.review": tag} if tag is not None else {})


# passed -> awaiting_review -------------------------------------------------------------------------


@pytest.mark.parametrize("review", [None, Review(required=False)])
def test_a_rule_without_a_required_review_lets_the_version_be_promoted(review: Review | None) -> None:
    assert machine.review_needed(passed(), review, version(), NOW) is None


def test_a_version_that_needs_review_waits_and_ops_hear_how_to_decide_with_the_evidence() -> None:
    move = machine.review_needed(passed(), REVIEW, version(), NOW)
    assert move is not None and (move.stage, move.tag) == (Stage.AWAITING_REVIEW, "awaiting_review")
    assert move.changes == {"awaiting_since": NOW, "registered_by": ALICE, "training_job": "train-7"}
    assert move.reason == "waits for review by a holder of the app role MLOps.Approver until 2026-12-08T09:00:00+00:00"
    [told] = move.told
    assert (told.kind, told.severity, told.link) == ("model.awaiting_review", "warning",
                                                     "https://ml.azure.com/runs/test-churn-v3")
    assert '`opsctl review approve churn 3 --reason "..."`' in told.summary
    assert '`opsctl review reject churn 3 --reason "..."`' in told.summary
    assert "mlops.review=approved|rejected on the version in Azure ML studio (by tag, role not verified)" in (
        told.summary)
    assert f"Four eyes: {ALICE} may not approve it." in told.summary
    assert told.table is not None and told.table.rows == (("accuracy", ">=", "0.9", "0.8", "pass"),)
    assert dict(told.facts) == {"since": "2026-12-01T09:00:00+00:00", "expires": "2026-12-08T09:00:00+00:00",
                                "registered by": ALICE}


def test_by_default_an_approver_decides_signed_in_and_the_tag_is_not_offered() -> None:
    move = machine.review_needed(passed(), Review(four_eyes=False), version(), NOW)
    assert move is not None and "by a holder of the app role MLOps.Approver, signed in)." in move.told[0].summary
    assert "Four eyes" not in move.told[0].summary and "mlops.review" not in move.told[0].summary


# the decision a tag gives --------------------------------------------------------------------------


@pytest.mark.parametrize(("tag", "approved"), [("approved", True), (" Rejected ", False), ("APPROVED", True)])
def test_a_review_tag_is_a_decision_by_whoever_changed_the_version_last(tag: str, approved: bool) -> None:
    decision = machine.tag_decision(waiting(), REVIEW, version(tag), NOW)
    assert decision == ReviewDecision(approved=approved, by=BOB, at=NOW, via="tag",
                                      reason=f"tag mlops.review={tag.strip().lower()} in Azure ML (by tag, role "
                                             "not verified)")


def test_without_by_tag_a_tag_decides_nothing_and_refuses_nothing() -> None:
    untrusted = REVIEW.model_copy(update={"by_tag": False})
    assert machine.tag_decision(waiting(), untrusted, version("approved"), NOW) is None
    assert machine.tag_decision(waiting(), untrusted, version("rejected"), NOW) is None
    assert machine.refused_tag(waiting(), untrusted, version("approved", by=ALICE)) is None


@pytest.mark.parametrize("tag", [None, "", "maybe", "approve"])
def test_a_tag_that_says_neither_approved_nor_rejected_decides_nothing(tag: str | None) -> None:
    assert machine.tag_decision(waiting(), REVIEW, version(tag), NOW) is None


def test_under_four_eyes_the_registrant_s_own_approval_by_tag_decides_nothing_but_a_rejection_does() -> None:
    assert machine.tag_decision(waiting(), REVIEW, version("approved", by=ALICE.upper()), NOW) is None
    rejection = machine.tag_decision(waiting(), REVIEW, version("rejected", by=ALICE), NOW)
    assert rejection is not None and not rejection.approved and rejection.by == ALICE
    alone = Review(four_eyes=False, by_tag=True)
    assert machine.tag_decision(waiting(), alone, version("approved", by=ALICE), NOW) is not None


def test_a_tag_set_by_an_unknown_identity_is_decided_by_unknown() -> None:
    decision = machine.tag_decision(waiting(), REVIEW, version("rejected", by=None), NOW)
    assert decision is not None and decision.by == "unknown"


# awaiting_review -> awaiting_review: an approval by tag refused -----------------------------------------


def test_the_registrant_s_own_approval_by_tag_is_recorded_once_and_not_taken() -> None:
    move = machine.refused_tag(waiting(), REVIEW, version("approved", by=ALICE))
    assert move is not None and (move.stage, move.tag, move.told) == (Stage.AWAITING_REVIEW, None, [])
    assert move.changes == {"refused_approval_by": ALICE}
    assert move.reason == f"approval by tag refused: {ALICE} registered the version (four eyes)"
    assert machine.refused_tag(waiting(refused_approval_by=ALICE), REVIEW, version("approved", by=ALICE)) is None


@pytest.mark.parametrize(("tag", "by", "review"), [
    ("approved", BOB, REVIEW), ("rejected", ALICE, REVIEW), ("approved", ALICE, Review(four_eyes=False, by_tag=True)),
    (None, ALICE, REVIEW)])
def test_nothing_is_refused_but_the_registrant_s_own_approval_under_four_eyes(tag: str | None, by: str,
                                                                              review: Review) -> None:
    assert machine.refused_tag(waiting(), review, version(tag, by=by)) is None


# awaiting_review -> rejected | promoted ----------------------------------------------------------------


def test_a_rejected_version_is_tagged_and_ops_hear_who_rejected_it_and_why() -> None:
    decision = ReviewDecision(approved=False, by=BOB, at=NOW, reason="drift on segment B", via="api")
    move = machine.review_rejected(waiting(), decision)
    assert (move.stage, move.tag, move.changes) == (Stage.REJECTED, "rejected", {"review": decision})
    assert move.reason == f"rejected by {BOB} (api): drift on segment B"
    [told] = move.told
    assert (told.kind, told.severity, told.title) == ("model.rejected", "warning", "churn v3 rejected in review")


def test_a_rejection_without_a_reason_says_so() -> None:
    decision = ReviewDecision(approved=False, by=BOB, at=NOW, via="tag")
    assert machine.review_rejected(waiting(), decision).reason == f"rejected by {BOB} (tag): no reason given"


def test_an_approved_version_is_promoted_with_its_approval_recorded() -> None:
    approval = ReviewDecision(approved=True, by=BOB, at=NOW, via="api")
    copy = ModelVersion(location="registry:shared", name="churn", version="3", uri="azureml://registries/shared/m/3")
    move = machine.promoted(waiting(), {"registry:shared": copy.uri}, copy, approval)
    assert (move.stage, move.changes["review"]) == (Stage.PROMOTED, approval)
    assert move.reason == f"promoted to registry:shared (approved by {BOB})"


# awaiting_review -> awaiting_review (a reminder) | expired ----------------------------------------------


def at(**delta: float) -> Any:
    return NOW + timedelta(**delta)


def test_nothing_happens_before_the_reminder_is_due() -> None:
    assert machine.review_waiting(waiting(), REVIEW, at(hours=23, minutes=59)) is None


def test_ops_are_reminded_once_when_it_is_due_with_when_the_version_expires() -> None:
    move = machine.review_waiting(waiting(), REVIEW, at(days=1))
    assert move is not None
    assert (move.stage, move.tag, move.changes) == (Stage.AWAITING_REVIEW, None, {"reminded": True})
    assert move.reason == "reminded after 24.0 h"
    [told] = move.told
    assert told.id == "model.awaiting_review:churn:3:reminder" and told.kind == "model.awaiting_review"
    assert told.title == "Reminder: churn v3 has waited 24.0 h for review"
    assert told.summary == "It expires 2026-12-08T09:00:00+00:00."
    assert machine.review_waiting(waiting(reminded=True), REVIEW, at(days=6)) is None


def test_a_version_not_reviewed_in_time_expires_and_ops_are_told() -> None:
    assert machine.review_waiting(waiting(reminded=True), REVIEW, at(days=7, seconds=-1)) is None
    move = machine.review_waiting(waiting(reminded=True), REVIEW, at(days=7))
    assert move is not None and (move.stage, move.tag, move.reason) == (Stage.EXPIRED, "expired",
                                                                        "not reviewed within 7.0 days")
    [told] = move.told
    assert (told.kind, told.severity, told.title) == ("model.expired", "warning", "churn v3 expired unreviewed")


def test_expiry_comes_first_even_when_no_reminder_was_sent() -> None:
    move = machine.review_waiting(waiting(), REVIEW, at(days=30))
    assert move is not None and move.stage is Stage.EXPIRED


def test_without_remind_after_nobody_is_reminded() -> None:
    quiet = Review(expires_after=7 * DAY, remind_after=None)
    assert machine.review_waiting(waiting(), quiet, at(days=6)) is None


def test_a_version_waiting_since_an_unknown_time_waits_from_now() -> None:
    assert machine.review_waiting(waiting(awaiting_since=None), REVIEW, at(days=30)) is None
