"""The lifecycle state machine, pure: (record, what was observed) -> the next stage and what to do.

Nothing here does I/O. `shared.reactor.lifecycle` observes (the test job, the promotion's
copies, the endpoint's rollout, the rule's champion, the endpoint), calls these functions and
carries out the move: tags on the version, the champion, notifications, the record, the audit.

    testing -> passed | failed | superseded (a newer version passed its test first: its test job is canceled)
    passed -> awaiting_review (the rule requires review) | promoted (copied to the rule's registries)
    awaiting_review -> promoted (approved, or review no longer required) | rejected | expired
    awaiting_review -> awaiting_review (ops reminded once; an approval by tag refused under four eyes)
    promoted -> rolling_out | superseded (a newer version waits, rolls out or serves there)
    rolling_out -> live | rolled_back (the rollout's outcome)
    live -> rolled_back (its rollout undone) | superseded (another version became the champion)
    superseded -> live (the champion is it again, after an undo) | retired (its deployment deleted)

`TRANSITIONS` is the same as a table, each move with the function that makes it; a unit test checks
that the unit tests drive every entry and no move outside it (`tests/unit/test_transitions.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from shared.domain.champions import Champion
from shared.domain.decisions import judge
from shared.domain.notification import MAX_SUMMARY, Notification, Table
from shared.domain.policy import Gate, Review, RolloutPlan
from shared.domain.ports import Endpoint, Job, JobStatus, ModelVersion
from shared.domain.records import HistoryAction, Lifecycle, ReviewDecision, Rollout, RolloutState, Stage
from shared.domain.transitions import Transition

TAG = "mlops.stage"
# Azure ML's documented tag limits (docs: "Service limits in Azure Machine Learning", runs: tag key 100
# characters, tag value 1,000, 50 tags); the page gives none of its own for model versions, so the app keeps to these.
TAG_KEY_LIMIT, TAG_VALUE_LIMIT = 100, 1000
IN_FLIGHT = (Stage.TESTING, Stage.PASSED, Stage.AWAITING_REVIEW, Stage.PROMOTED, Stage.ROLLING_OUT)
SUPERSEDED: Final = "model.superseded"
_NUMERIC_VERSION = re.compile(r"^\d{1,30}(\.\d{1,30}){0,9}$")

TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition(Stage.TESTING, Stage.PASSED, "judged", "the test job completed and every gate passed"),
    Transition(Stage.TESTING, Stage.FAILED, "judged", "the test job failed or was canceled, or a gate failed"),
    Transition(Stage.TESTING, Stage.SUPERSEDED, "overtaken_in_testing",
               "while its test job runs, a newer version of the model passed its test under the same rule"),
    Transition(Stage.PASSED, Stage.AWAITING_REVIEW, "review_needed", "the rule requires a person's review"),
    Transition(Stage.PASSED, Stage.PROMOTED, "promoted", "no review needed: copied along the promotion path"),
    Transition(Stage.AWAITING_REVIEW, Stage.PROMOTED, "promoted",
               "approved (through the API or by tag), or the rule no longer requires review"),
    Transition(Stage.AWAITING_REVIEW, Stage.REJECTED, "review_rejected", "rejected through the API or by tag"),
    Transition(Stage.AWAITING_REVIEW, Stage.EXPIRED, "review_waiting", "not reviewed within `expires_after`"),
    Transition(Stage.AWAITING_REVIEW, Stage.AWAITING_REVIEW, "review_waiting", "ops reminded once (`remind_after`)"),
    Transition(Stage.AWAITING_REVIEW, Stage.AWAITING_REVIEW, "refused_tag",
               "its registrant approved it by tag under four eyes: recorded once, not taken"),
    Transition(Stage.PROMOTED, Stage.ROLLING_OUT, "rollout_started", "its rollout started on the rule's endpoint"),
    Transition(Stage.PROMOTED, Stage.SUPERSEDED, "overtaken", "a newer version waits for, rolls out on or serves it"),
    Transition(Stage.ROLLING_OUT, Stage.LIVE, "rollout_ended", "the rollout succeeded: the rule's champion"),
    Transition(Stage.ROLLING_OUT, Stage.ROLLED_BACK, "rollout_ended", "the rollout rolled back or failed"),
    Transition(Stage.LIVE, Stage.ROLLED_BACK, "rollout_ended", "its rollout undone: the champion goes back"),
    Transition(Stage.LIVE, Stage.SUPERSEDED, "champion_changed", "another version became the champion"),
    Transition(Stage.SUPERSEDED, Stage.LIVE, "champion_changed", "the champion is it again: the newer one was undone"),
    Transition(Stage.SUPERSEDED, Stage.RETIRED, "retirement", "its deployment is gone from the endpoint"),
)


@dataclass
class Move:
    """The next stage, why, the record's fields that change, and what to do about it."""

    stage: Stage
    reason: str
    changes: dict[str, Any] = field(default_factory=dict)
    tag: str | None = None  # the `mlops.stage` tag the version gets
    told: list[Notification] = field(default_factory=list)
    succession: Succession | None = None  # the rule's champion changes
    follow: list[str] = field(default_factory=list)  # lifecycles to reconcile after this one
    cancel: str | None = None  # a job of the version's workspace to cancel (its test job, no longer wanted)


@dataclass(frozen=True)
class Succession:
    """The rule's champion changes: `champion` serves from now on (None: no version does), and `ended` says
    why the one before it stopped serving (its history says so)."""

    champion: Champion | None
    ended: str


def key_of(name: str, version: str) -> str:
    return f"{name}:{version}"


def watched(record: Lifecycle) -> bool:
    """Whether a lifecycle still has a stage to reach, so the resync reconciles it."""
    return record.stage in (*IN_FLIGHT, Stage.LIVE) or (record.stage is Stage.SUPERSEDED and bool(record.deployment))


def judged(record: Lifecycle, job: Job, gates: list[Gate],
           champion_metrics: dict[str, float | None] | None) -> Move | None:
    """testing -> passed | failed, once the test job has ended."""
    if not job.status.is_terminal:
        return None
    if job.status is not JobStatus.COMPLETED:
        said = job.error or ("no error given; the end of its log is below" if job.log else
                             "Azure ML gave no error and kept no log")
        reason = f"test job {job.name} {job.status.value}: {said}"
        return _rejected(record, reason, None, job, {"metrics": job.metrics, "test_job_url": job.studio_url,
                                                     "test_job_log": job.log}, log=job.log)
    verdict = judge(gates, job.metrics, champion_metrics)
    table = verdict.table()
    changes = {"metrics": job.metrics, "gates": table, "verdict": verdict, "test_job_url": job.studio_url}
    if not verdict.passed:
        failed = ", ".join(result.describe() for result in verdict.results if not result.passed)
        return _rejected(record, f"failed gates: {failed}", table, job, changes)
    return Move(Stage.PASSED, "every gate passed", changes, tag="passed", told=[Notification(
        id=f"model.tested:{record.key}", kind="model.tested",
        title=f"{record.model} v{record.version} passed its gates", subject=record.key,
        table=table, link=job.studio_url,
    )])


def _rejected(record: Lifecycle, reason: str, table: Table | None, job: Job, changes: dict[str, Any],
              log: str | None = None) -> Move:
    """failed, with ops told why: the failed gates, or the job's error and the end of its log."""
    head = f"{reason}\n\nThe end of its log:\n"
    room = MAX_SUMMARY - len(head)  # the log's last lines matter most: keep those, not its start
    summary = head + (log if len(log) <= room else "…" + log[-room + 1:]) if log and room > 100 else reason
    return Move(Stage.FAILED, reason, changes, tag="rejected", told=[Notification(
        id=f"model.rejected:{record.key}", kind="model.rejected", severity="warning",
        title=f"{record.model} v{record.version} rejected", summary=summary, subject=record.key,
        table=table, link=job.studio_url,
    )])


def review_needed(record: Lifecycle, review: Review | None, model: ModelVersion, now: datetime) -> Move | None:
    """passed -> awaiting_review when the rule requires a person's sign-off; ops are told what waits,
    with its gate table, and exactly how to approve or reject it."""
    if review is None or not review.required:
        return None
    who = f"a holder of the app role {review.approvers}"
    key = f"{record.model} {record.version}"
    action = (f"Approve with `opsctl review approve {key} --reason \"...\"` or reject with `opsctl review reject "
              f"{key} --reason \"...\"` (POST /api/ops/lifecycles/{record.model}/{record.version}/review, by {who}"
              ", signed in)")
    action += (f", or set the tag {review.tag}=approved|rejected on the version in Azure ML studio (by tag, role "
               "not verified)." if review.by_tag else ".")
    if review.four_eyes:
        action += f" Four eyes: {model.created_by or 'its registrant'} may not approve it."
    expires = now + timedelta(seconds=review.expires_after)
    return Move(Stage.AWAITING_REVIEW, f"waits for review by {who} until {expires.isoformat(timespec='seconds')}", {
        "awaiting_since": now, "registered_by": model.created_by, "training_job": model.job_name,
    }, tag="awaiting_review", told=[Notification(
        id=f"model.awaiting_review:{record.key}", kind="model.awaiting_review", severity="warning",
        title=f"{record.model} v{record.version} waits for review", summary=action, subject=record.key,
        table=record.gates, link=record.test_job_url,  # the evidence, a button
        facts=(("since", now.isoformat(timespec="seconds")), ("expires", expires.isoformat(timespec="seconds")),
               ("registered by", model.created_by or "unknown")),
    )])


def tag_decision(record: Lifecycle, review: Review, model: ModelVersion, now: datetime) -> ReviewDecision | None:
    """The decision the version's review tag gives, by whoever changed the version last; None when the
    rule does not take decisions by tag, the tag says nothing, or its approval is refused under four eyes
    (see `refused_tag`). A tag carries no token: it is recorded as by tag, role not verified."""
    value = model.tags.get(review.tag, "").strip().lower()
    if not review.by_tag or value not in ("approved", "rejected"):
        return None
    by = model.modified_by or "unknown"
    if value == "approved" and review.four_eyes and same_identity(by, record.registered_by):
        return None
    return ReviewDecision(approved=value == "approved", by=by, at=now, via="tag",
                          reason=f"tag {review.tag}={value} in Azure ML (by tag, role not verified)")


def refused_tag(record: Lifecycle, review: Review, model: ModelVersion) -> Move | None:
    """An approval by tag from the version's own registrant, under four eyes: recorded once, not taken."""
    by = model.modified_by or "unknown"
    approved = review.by_tag and model.tags.get(review.tag, "").strip().lower() == "approved"
    own = approved and review.four_eyes and same_identity(by, record.registered_by)
    if not own or record.refused_approval_by == by:
        return None
    return Move(Stage.AWAITING_REVIEW, f"approval by tag refused: {by} registered the version (four eyes)",
                {"refused_approval_by": by})


def review_rejected(record: Lifecycle, decision: ReviewDecision) -> Move:
    """awaiting_review -> rejected: nothing of the version is promoted."""
    reason = f"rejected by {decision.by} ({decision.via}): {decision.reason or 'no reason given'}"
    return Move(Stage.REJECTED, reason, {"review": decision}, tag="rejected", told=[Notification(
        id=f"model.rejected:{record.key}", kind="model.rejected", severity="warning",
        title=f"{record.model} v{record.version} rejected in review", summary=reason, subject=record.key,
    )])


def review_waiting(record: Lifecycle, review: Review, now: datetime) -> Move | None:
    """awaiting_review -> expired once its time is up; one reminder to ops after `remind_after`."""
    since = record.awaiting_since or now
    if now - since >= timedelta(seconds=review.expires_after):
        reason = f"not reviewed within {_hours(review.expires_after)}"
        return Move(Stage.EXPIRED, reason, tag="expired", told=[Notification(
            id=f"model.expired:{record.key}", kind="model.expired", severity="warning",
            title=f"{record.model} v{record.version} expired unreviewed", summary=reason, subject=record.key,
        )])
    if review.remind_after is not None and not record.reminded and now - since >= timedelta(
            seconds=review.remind_after):
        waited = _hours((now - since).total_seconds())
        return Move(Stage.AWAITING_REVIEW, f"reminded after {waited}", {"reminded": True}, told=[Notification(
            id=f"model.awaiting_review:{record.key}:reminder", kind="model.awaiting_review", severity="warning",
            title=f"Reminder: {record.model} v{record.version} has waited {waited} for review",
            summary=f"It expires {(since + timedelta(seconds=review.expires_after)).isoformat(timespec='seconds')}.",
            subject=record.key,
        )])
    return None


def promoted(record: Lifecycle, copies: dict[str, str], serving: ModelVersion,
             approval: ReviewDecision | None = None) -> Move:
    """passed (or approved in review) -> promoted, once copied to every registry of the rule's
    promotion path (maybe none)."""
    told = [Notification(
        id=f"model.promoted:{record.key}", kind="model.promoted", title=f"{record.model} v{record.version} promoted",
        subject=record.key, facts=tuple(copies.items()),
    )] if copies else []
    approved = f" (approved by {approval.by})" if approval else ""
    changes: dict[str, Any] = {"promoted_to": copies, "serving_uri": serving.uri, "serving_location": serving.location}
    if approval:
        changes["review"] = approval
    return Move(Stage.PROMOTED, "promoted to " + (", ".join(copies) or "nowhere (no promotion path)") + approved,
                changes, tag="promoted", told=told)


def lineage(record: Lifecycle, model: ModelVersion, approval: ReviewDecision | None) -> dict[str, str]:
    """The tags a promoted version's registry copy carries: where it came from and the evidence it
    passed on (source workspace, training and test jobs, the gates in brief, the approval, the rule).

    Values are cut to Azure ML's tag limits with an ellipsis; what is unknown is left out.
    """
    tags = {
        "mlops.source_workspace": record.workspace,
        "mlops.training_job": model.job_name or record.training_job,
        "mlops.test_job": record.test_job,
        "mlops.test_job_url": record.test_job_url,
        "mlops.gates": gates_brief(record),
        "mlops.approved_by": approval.by if approval and approval.approved else None,
        "mlops.approved_at": approval.at.isoformat(timespec="seconds") if approval and approval.approved else None,
        "mlops.rule": record.rule,
    }
    return {key[:TAG_KEY_LIMIT]: fit_tag(value) for key, value in tags.items() if value}


def lineage_by_hand(record: Lifecycle | None, model: ModelVersion, by: str, forced: str | None) -> dict[str, str]:
    """The lineage of a copy an admin promoted by hand: what the version's lifecycle knows (if it has
    one), who promoted it and, for a forced promotion, why."""
    known = lineage(record, model, record.review) if record else {
        key: value for key, value in (("mlops.source_workspace", model.location),
                                      ("mlops.training_job", model.job_name)) if value}
    extra = {"mlops.promoted_by": by, "mlops.forced": forced}
    return {**known, **{key: fit_tag(value) for key, value in extra.items() if value}}


def gates_brief(record: Lifecycle) -> str:
    """`accuracy=0.91>=0.8 pass; auc=0.95>=0.93 (champion - 0.01) pass`: the gates on one line (`Verdict.brief`)."""
    if record.verdict is not None:
        return record.verdict.brief()
    return _brief_of_table(record.gates) if record.gates else "not judged"


def _brief_of_table(table: Table) -> str:
    """The brief of a version judged before its verdict was kept, which has only its gate table: read back
    from the table's cells (`>= champion - 0.01` is the check `>=` against the champion). Versions judged
    since are briefed from their verdict."""
    parts = []
    for metric, check, value, threshold, result in (row[:5] for row in table.rows):
        if check.startswith((">=", "<=")):
            baseline = check[2:].strip()
            parts.append(f"{metric}={value}{check[:2]}{threshold}{f' ({baseline})' if baseline else ''} {result}")
        else:
            parts.append(f"{metric}={value} {check} {result}")
    return "; ".join(parts) or "no gates"


def fit_tag(value: str) -> str:
    """A tag value within Azure ML's limit, cut with an ellipsis."""
    return value if len(value) <= TAG_VALUE_LIMIT else value[:TAG_VALUE_LIMIT - 1] + "\u2026"


def newer_version(record: Lifecycle, plan: RolloutPlan, rollout: Rollout | None, champion: Champion | None,
                  others: list[Lifecycle]) -> tuple[str, str] | None:
    """The newest version of the same model that is newer than `record`'s and waits for, rolls out
    on or serves the rule's endpoint, with where it is; None when there is none (or the versions
    are not numbers, whose order the app does not guess)."""
    model, mine = record.model, record.version
    candidates: list[tuple[str, str]] = []
    if rollout is not None and rollout.model == model:
        if rollout.version == mine:
            return None  # this version's own rollout started already: let it go on
        if rollout.state.is_active or rollout.state is RolloutState.SUCCEEDED:
            where = "live" if rollout.state is RolloutState.SUCCEEDED else "rolling out"
            candidates.append((rollout.version, f"{where} on {plan.endpoint}"))
    undone = rollout.version if rollout and rollout.state in (RolloutState.ROLLED_BACK, RolloutState.FAILED) else None
    if champion and champion.model == model and champion.endpoint == plan.endpoint \
            and champion.version != undone:  # an undo takes the champion off the endpoint
        candidates.append((champion.version, f"serving on {plan.endpoint}"))
    for other in others:
        if other.model == model and other.rule == record.rule and other.stage in (Stage.PROMOTED, Stage.ROLLING_OUT):
            where = "waiting for" if other.stage is Stage.PROMOTED else "rolling out on"
            candidates.append((other.version, f"{where} {plan.endpoint}"))
    newer = [(version, where) for version, where in candidates if is_newer(version, mine)]
    return max(newer, key=lambda found: version_order(found[0])) if newer else None


def overtaken(record: Lifecycle, newer: tuple[str, str]) -> Move:
    """promoted -> superseded: a newer version is ahead of this one on the endpoint."""
    version, where = newer
    reason = f"v{version} of {record.model} is newer and {where}: v{record.version} is not deployed"
    return Move(Stage.SUPERSEDED, reason, {"superseded_by": version}, tag="superseded", told=[Notification(
        id=f"{SUPERSEDED}:{record.key}", kind=SUPERSEDED, severity="warning",
        title=f"{record.model} v{record.version} superseded by v{version}", summary=reason, subject=record.key,
    )])


PASSED_ON = (Stage.PASSED, Stage.AWAITING_REVIEW, Stage.PROMOTED, Stage.ROLLING_OUT, Stage.LIVE)


def overtaken_in_testing(record: Lifecycle, job: Job, others: list[Lifecycle]) -> Move | None:
    """testing -> superseded, while its test job still runs, when a newer version of the same model has passed
    its test under the same rule and is on its way (`PASSED_ON`): the job is canceled, since its verdict could
    only be for a version the newer one replaces. A newer version still testing cancels nothing (it may fail,
    and then the older one is the one to deploy); a test job that has ended is judged as usual; versions that
    are not numbers are never ordered (see `is_newer`)."""
    if job.status.is_terminal:
        return None
    newer = [other.version for other in others if other.model == record.model and other.rule == record.rule
             and other.stage in PASSED_ON and is_newer(other.version, record.version)]
    if not newer:
        return None
    version = max(newer, key=version_order)
    reason = f"v{version} of {record.model} is newer and passed its test: test job {job.name} canceled"
    return Move(Stage.SUPERSEDED, reason, {"superseded_by": version}, tag="superseded", cancel=job.name,
                told=[Notification(
                    id=f"{SUPERSEDED}:{record.key}", kind=SUPERSEDED, severity="info",
                    title=f"{record.model} v{record.version} superseded by v{version} while testing",
                    summary=reason, subject=record.key,
                )])


def rollout_started(record: Lifecycle, rollout: Rollout) -> Move:
    """promoted -> rolling_out."""
    return Move(Stage.ROLLING_OUT, f"rollout {rollout.id} started on {rollout.endpoint}", {
        "rollout": rollout.id, "rollout_key": rollout.key, "deployment": rollout.deployment,
    })


def rollout_ended(record: Lifecycle, rollout: Rollout | None, champion: Champion | None,
                  now: datetime) -> Move | None:
    """rolling_out -> live | rolled_back, and live -> rolled_back, by the rollout's outcome.

    The version that goes live becomes the rule's champion (the one its successors are judged
    against); the champion it replaces is followed, so that it becomes superseded. An undone
    version gives the champion back to the one it replaced, which is followed to become live again.
    """
    if rollout is None or not rollout.state.has_ended:
        return None
    if rollout.state is RolloutState.SUCCEEDED:
        if record.stage is Stage.LIVE:
            return None
        crowned = Champion(model=record.model, version=record.version, deployment=rollout.deployment,
                           endpoint=rollout.endpoint, workspace=rollout.workspace, metrics=record.metrics, since=now,
                           previous=champion.model_copy(update={"previous": None}) if champion else None)
        replaced = [key_of(champion.model, champion.version)] if champion and not _is(champion, record) else []
        return Move(Stage.LIVE, f"serving 100% of {rollout.endpoint}", tag="live", follow=replaced,
                    succession=Succession(crowned, f"replaced by v{record.version}"))
    reason = rollout.rollback_reason or f"its rollout {rollout.state.value}"
    if record.stage is Stage.LIVE and champion and _is(champion, record):
        previous = champion.previous
        back = [key_of(previous.model, previous.version)] if previous else []
        undo = next((entry for entry in rollout.history if entry.action is HistoryAction.UNDO), None)
        ended = f"undone by {undo.actor}: {reason}" if undo else f"rolled back: {reason}"
        return Move(Stage.ROLLED_BACK, reason, tag="rolled_back", follow=back, succession=Succession(previous, ended))
    return Move(Stage.ROLLED_BACK, reason, tag="rolled_back")


def champion_changed(record: Lifecycle, champion: Champion | None) -> Move | None:
    """live -> superseded when another version became the champion; superseded -> live when the
    champion is this version again (the newer one was undone)."""
    if champion is None:
        return None
    if record.stage is Stage.LIVE and not _is(champion, record):
        return Move(Stage.SUPERSEDED, f"v{champion.version} of {champion.model} replaced it",
                    {"superseded_by": champion.version}, tag="superseded")
    if record.stage is Stage.SUPERSEDED and _is(champion, record):
        return Move(Stage.LIVE, "serving again: the version that replaced it was rolled back", tag="live")
    return None


def retirement(record: Lifecycle, endpoint: Endpoint) -> Move | None:
    """superseded -> retired, once its deployment is gone from the endpoint."""
    if record.stage is not Stage.SUPERSEDED or not record.deployment:
        return None
    if any(deployment.name == record.deployment for deployment in endpoint.deployments):
        return None
    return Move(Stage.RETIRED, f"deployment {record.deployment} deleted from {endpoint.name}", tag="retired")


def awaits(record: Lifecycle, rollout: Rollout) -> bool:
    """Whether the lifecycle has yet to take its ended rollout's outcome."""
    if record.stage is Stage.ROLLING_OUT:
        return rollout.state.has_ended
    return record.stage is Stage.LIVE and rollout.state in (RolloutState.ROLLED_BACK, RolloutState.FAILED)


def version_order(version: str) -> tuple[bool, tuple[int, ...], str]:
    """A sort key: numeric versions (`9`, `1.2.10`) by their numbers, after any other version."""
    numbers = tuple(int(part) for part in version.split(".")) if _NUMERIC_VERSION.match(version) else ()
    return bool(numbers), numbers, version


def is_newer(version: str, than: str) -> bool:
    """Whether `version` is a later number than `than`; never for versions that are not numbers."""
    ours, theirs = version_order(version), version_order(than)
    return ours[0] and theirs[0] and ours[1] > theirs[1]


def same_identity(identity: str | None, other: str | None) -> bool:
    return bool(identity) and bool(other) and str(identity).strip().lower() == str(other).strip().lower()


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def _is(champion: Champion, record: Lifecycle) -> bool:
    return champion.is_version(record.model, record.version)
