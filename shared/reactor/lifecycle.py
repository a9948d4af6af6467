"""The I/O around the lifecycle state machine: observe, let the machine decide, carry it out.

`reconcile` is the controller loop for one model version: under the version's lease it reads
the record, observes what its stage depends on, takes the machine's move, and repeats until
the machine waits. Events, the resync timer and the rollout ticks all call it, so an event
that is late, duplicated, out of order or never delivered changes nothing in the end result.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import shared.domain.champions as champions
import shared.domain.lifecycle as machine
from shared.bootstrap import Services
from shared.domain.decisions import deployment_name, evaluation_job_name
from shared.domain.lifecycle import Move, key_of
from shared.domain.people import Person
from shared.domain.policy import Rule
from shared.domain.ports import Busy, ModelVersion, NotFound, TryLater
from shared.domain.records import Lifecycle, ReviewDecision, Rollout, Stage, StageEntry
from shared.reactor import outcomes
from shared.reactor import rollout as engine

REVIEW_WAIT_SECONDS = 10.0  # a reconcile holds a version for a few platform calls at most
log = logging.getLogger(__name__)


def start_testing(services: Services, rule: Rule, model: ModelVersion, cause: str) -> Lifecycle:
    """Submit the model's test job (idempotent by name) and record the lifecycle as testing."""
    key = key_of(model.name, model.version)
    job_name = evaluation_job_name(model.name, model.version)
    inputs = {**rule.test.inputs, "model": model.uri}  # the test pipeline's declared input (pipelines/)
    tags = {"mlops.purpose": "test", "mlops.model": model.name, "mlops.version": model.version,
            "mlops.rule": rule.name}
    services.platform.submit_job(model.location, job_name, rule.test.pipeline, inputs, tags)
    record = Lifecycle(
        model=model.name, version=model.version, workspace=model.location, uri=model.uri, rule=rule.name,
        stage=Stage.TESTING, test_job=job_name,
        history=[StageEntry(stage=Stage.TESTING, time=services.clock(), cause=cause,
                            reason=f"test job {job_name} submitted")],
    )
    created = services.state.lifecycles.create(key, record)
    # Tagged under the version's lease and only while it is still testing: the test job may end, and another
    # worker judge the version and tag it, between the record's creation and this tag.
    with _exclusive(services, key, wait_seconds=10):
        current = services.state.lifecycles.get(key)
        if current is not None and current.stage is Stage.TESTING:
            services.platform.set_model_tags(model.location, model.name, model.version, {machine.TAG: "testing"})
    if created:
        outcomes.audit(services, cause, key, "test", "submitted", f"test job {job_name} ({rule.test.pipeline})")
    return current or record


def reconcile(services: Services, key: str, cause: str, wait_seconds: float = 0) -> str:
    """Advance one lifecycle as far as current platform state allows; return its stage. Busy when another
    reconciler holds the version for longer than `wait_seconds`."""
    follow: list[str] = []
    with _exclusive(services, key, wait_seconds=wait_seconds):
        record = services.state.lifecycles.get(key)
        if record is None:
            return "unknown"
        rule = services.policy.rule_named(record.rule)
        if rule is None:
            return record.stage.value
        for _ in range(len(Stage)):
            move = _decide(services, rule, record, cause)
            if move is None:
                break
            record = _carry_out(services, rule, record, move, cause)
            follow += move.follow
            if move.stage is Stage.PASSED:  # older versions still testing are superseded now, their jobs canceled
                follow += [other.key for other in services.state.lifecycles.list(prefix=f"{record.model}:")
                           if other.stage is Stage.TESTING and other.rule == record.rule
                           and machine.is_newer(record.version, other.version)]
    outcomes.recovered(services, "reconcile", key, cause)  # an incident of it, if one is open, is over
    for other in follow:
        if other != key:
            _follow_up(services, other, cause)
    return record.stage.value


def follow(services: Services, rollout: Rollout, cause: str) -> None:
    """After a rollout ended (a tick, an admin's abort or undo): the version it rolled out takes the
    outcome now rather than at the next resync."""
    record = services.state.lifecycles.get(key_of(rollout.model, rollout.version))
    if record is not None and machine.awaits(record, rollout):
        _follow_up(services, key_of(rollout.model, rollout.version), cause)


def _follow_up(services: Services, key: str, cause: str) -> None:
    """Reconcile another lifecycle; what fails there is its own (the resync takes it again)."""
    try:
        reconcile(services, key, cause)
    except Busy as later:
        log.info("lifecycle %s: %s; the resync takes it", key, later)
    except Exception as error:
        outcomes.report_failure(services, "reconcile", key, error, cause)


def _decide(services: Services, rule: Rule, record: Lifecycle, cause: str) -> Move | None:
    if record.stage is Stage.TESTING:
        job = services.platform.get_job(record.workspace, record.test_job)
        overtaken = machine.overtaken_in_testing(record, job, services.state.lifecycles.list(prefix=f"{record.model}:"))
        if overtaken is not None:
            return overtaken
        champion = _champion(services, rule)
        return machine.judged(record, job, rule.gates, champion.metrics if champion else None)
    if record.stage is Stage.PASSED:
        model = services.platform.get_model(record.workspace, record.model, record.version)
        waiting = machine.review_needed(record, rule.review, model, services.clock()) if record.review is None else None
        return waiting or _promote(services, rule, record, model, record.review)
    if record.stage is Stage.AWAITING_REVIEW:
        return _await_review(services, rule, record)
    if record.stage is Stage.PROMOTED:
        return _roll_out(services, rule, record, cause)
    if record.stage in (Stage.ROLLING_OUT, Stage.LIVE):
        champion = _champion(services, rule)
        ended = machine.rollout_ended(record, _rollout_of(services, rule, record), champion, services.clock())
        return ended or (machine.champion_changed(record, champion) if record.stage is Stage.LIVE else None)
    if record.stage is Stage.SUPERSEDED and record.deployment:
        back = machine.champion_changed(record, _champion(services, rule))
        rollout = _rollout_of(services, rule, record)
        if back is not None or rollout is None:
            return back
        return machine.retirement(record, services.platform.get_endpoint(rollout.workspace, rollout.endpoint))
    return None


def _await_review(services: Services, rule: Rule, record: Lifecycle) -> Move | None:
    model = services.platform.get_model(record.workspace, record.model, record.version)
    review = rule.review
    if review is None or not review.required:  # the policy no longer asks for it
        return _promote(services, rule, record, model, None)
    decision = record.review or machine.tag_decision(record, review, model, services.clock())
    if decision is not None:
        return _promote(services, rule, record, model, decision) if decision.approved else machine.review_rejected(
            record, decision)
    return machine.refused_tag(record, review, model) or machine.review_waiting(record, review, services.clock())


def review(services: Services, key: str, approved: bool, person: Person, reason: str, cause: str) -> Lifecycle:
    """A verified person's decision on a version that waits for review, through the admin API; the version
    then moves on at once. ReviewRefused when they may not decide or nothing waits for a decision.

    The rule's `approvers` role is checked against the person's token. Four eyes compares the identity
    Azure ML recorded as the version's registrant (`systemData.createdBy`: a UPN, or an application's id)
    with the token's `upn` (or application id); a token without one cannot show it is someone else, so
    it cannot approve.

    A person waits a few seconds for a reconcile under way (the resync's, an event's) rather than being
    told to try again, both before the decision and after it: the answer then shows what the decision
    did (a reconcile that took the version in between has carried it on). One that holds the version
    for longer still carries the recorded decision on; the answer shows it recorded."""
    with _exclusive(services, key, wait_seconds=REVIEW_WAIT_SECONDS):
        record = services.state.lifecycles.get(key)
        if record is None:
            raise NotFound(f"no lifecycle for {key}")
        rule = services.policy.rule_named(record.rule)
        policy = rule.review if rule else None
        if record.stage is not Stage.AWAITING_REVIEW or policy is None:
            raise ReviewRefused(409, f"{key} is {record.stage.value}, not awaiting_review: there is nothing to decide")
        if not person.holds(policy.approvers):
            raise ReviewRefused(403, f"deciding on a review needs the app role {policy.approvers}; "
                                     f"{person.display} does not hold it")
        if approved and policy.four_eyes:
            if person.principal is None:
                raise ReviewRefused(403, f"four eyes: {person.display}'s token names no user principal (upn) to "
                                         f"compare with who registered {key}, so it cannot approve")
            if machine.same_identity(person.principal, record.registered_by):
                raise ReviewRefused(403, f"four eyes: {person.display} ({person.principal}) registered {key} "
                                         "and may not approve it")
        decision = ReviewDecision(approved=approved, by=person.principal or person.display, by_oid=person.oid,
                                  at=services.clock(), reason=reason, via="api")
        services.state.lifecycles.update(key, lambda stored: (stored or record).model_copy(update={"review": decision}))
        outcomes.audit(services, cause, key, "review", "approved" if approved else "rejected",
                       f"{reason} (by {person.display})", by=person)
    try:
        reconcile(services, key, cause, wait_seconds=REVIEW_WAIT_SECONDS)
    except Busy as later:  # recorded: whoever holds the version now, or the next resync, moves it on
        log.info("lifecycle %s: %s; the decision is recorded", key, later)
    return services.state.lifecycles.get(key) or record


class ReviewRefused(Exception):
    """A review decision the caller may not give (403) or that has nothing to decide (409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _promote(services: Services, rule: Rule, record: Lifecycle, model: ModelVersion,
             approval: ReviewDecision | None) -> Move:
    serving, copies = model, {}
    lineage = machine.lineage(record, model, approval)
    for target in rule.promotion.path if rule.promotion else []:
        # Deployments reference the registry's copy: one artefact for every workspace that serves it.
        serving = services.platform.promote_model(model, target, lineage)
        copies[target] = serving.uri
    return machine.promoted(record, copies, serving, approval)


def _roll_out(services: Services, rule: Rule, record: Lifecycle, cause: str) -> Move | None:
    plan = rule.rollout
    if plan is None:
        return None
    key = engine.key_for(plan.workspace, plan.endpoint)
    others = services.state.lifecycles.list(prefix=f"{record.model}:")
    newer = machine.newer_version(record, plan, services.state.rollouts.get(key), _champion(services, rule), others)
    if newer is not None:
        return machine.overtaken(record, newer)
    try:
        rollout = engine.start(services, rule.name, plan, record.serving_location or record.workspace, record.model,
                               record.version, cause)
    except TryLater:
        raise  # the platform is busy: whoever called tries again soon
    except Busy as busy:  # another rollout holds the endpoint: the version waits for it
        outcomes.audit(services, cause, record.key, "rollout", "waiting", str(busy))
        return None
    except engine.RolloutEnded:  # started before this record could say so: take it as it is
        found = engine.find(services, key, deployment_name(record.model, record.version))
        if found is None:
            raise
        rollout = found
    return machine.rollout_started(record, rollout)


def _rollout_of(services: Services, rule: Rule, record: Lifecycle) -> Rollout | None:
    plan = rule.rollout
    key = record.rollout_key or (engine.key_for(plan.workspace, plan.endpoint) if plan else None)
    if key is None:
        return None
    return engine.find(services, key, record.deployment or deployment_name(record.model, record.version))


def _champion(services: Services, rule: Rule) -> champions.Champion | None:
    return services.state.champions.get(rule.name)


def _carry_out(services: Services, rule: Rule, record: Lifecycle, move: Move, cause: str) -> Lifecycle:
    """Tags, champion and notifications first: if one fails for now, the move is taken again next
    time (each is idempotent); then the record and the audit trail."""
    now = services.clock()
    if move.cancel is not None:
        try:
            services.platform.cancel_job(record.workspace, move.cancel)
        except NotFound:
            log.warning("job %s is gone from %s; nothing to cancel", move.cancel, record.workspace)
    if move.tag is not None:
        # The registry's copy is the artefact that serves: it tells the same stage as the version it came from.
        serving = move.changes.get("serving_location", record.serving_location)
        for location in dict.fromkeys(filter(None, (record.workspace, serving))):
            try:
                services.platform.set_model_tags(location, record.model, record.version, {machine.TAG: move.tag})
            except NotFound:
                log.warning("%s is gone from %s; its stage tag is not set", record.key, location)
    succession = move.succession
    if succession is not None:
        before = _champion(services, rule)
        if succession.champion is not None:
            services.state.champions.put(rule.name, succession.champion)
        else:
            services.state.champions.delete(rule.name)
        services.state.champion_histories.update(rule.name, lambda history: champions.changed(
            history, rule.name, before, succession.champion, succession.ended, now))
    for notification in move.told:
        outcomes.notify(services, notification, rule.channels_for(notification.kind))

    def change(stored: Lifecycle | None) -> Lifecycle:
        current = stored or record
        updated = current.model_copy(update={**move.changes, "stage": move.stage})
        updated.history = [*current.history, StageEntry(stage=move.stage, time=now, cause=cause, reason=move.reason)]
        return updated

    stored = services.state.lifecycles.update(record.key, change)
    outcomes.audit(services, cause, record.key, "lifecycle", move.stage.value, move.reason)
    return stored


@contextlib.contextmanager
def _exclusive(services: Services, key: str, wait_seconds: float = 0) -> Iterator[None]:
    """One reconciler per model version; another one busy (for longer than `wait_seconds`) means try
    again shortly. Only acquiring is retried: what the body raises is the body's."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(services.state.lifecycles.lease(key, seconds=60, wait_seconds=wait_seconds))
        except Busy as error:
            raise Busy(f"lifecycle {key} is being reconciled elsewhere") from error
        yield
