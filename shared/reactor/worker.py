"""The queue worker: claims a queued event for its delivery, runs the reaction, and records dead letters.

Intake only enqueues (the queue message is the record); the worker claims the event in the
ledger first (`intake.claimed`), so that a duplicate delivery stops there, audited, and its
claim check, if any, is deleted.

Contention is not failure. A work item that meets a lock or lease held by someone else (a
lifecycle being reconciled elsewhere, an endpoint's lease, a record changed under it) or a
platform that says "busy, try later" is put back on the queue to be seen again after a delay
that grows with each re-delivery, and the current delivery completes. Raising instead would
spend the queue's 5 dequeues within seconds and dead-letter an item that would have
succeeded a minute later.
"""

from __future__ import annotations

import hashlib
import logging
import random

from shared.adapters import telemetry
from shared.adapters.storage.stores import Stores
from shared.bootstrap import Services
from shared.domain.events import AmlEvent, parse_event
from shared.domain.ports import Busy
from shared.domain.records import AuditEntry
from shared.domain.work import DeadLetter, WorkFailure, WorkItem
from shared.reactor import intake

log = logging.getLogger(__name__)

# Re-deliveries after contention wait FIRST_DELAY * 2^n seconds (n = re-deliveries so far), at most
# MAX_DELAY, up to MAX_REDELIVERIES times (about 20 minutes in all); then the item fails as any other.
FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 300.0
MAX_REDELIVERIES = 10
JITTER = 0.2


class ClaimMissing(LookupError):
    """The claim-checked event is gone: its item was handled (and the claim deleted) already."""


def process(item: WorkItem, services: Services, attempt: int = 1) -> None:
    """Run the reaction to a queued event. Contention re-delivers the item later; other
    exceptions propagate so the queue retries it.

    It runs in the `react` span, a child of the intake's span through the item's `traceparent`.
    """
    with telemetry.span("react", parent=item.traceparent, kind="consumer", attempt=attempt,
                        **telemetry.event_dimensions(item.event)):
        _process(item, services, attempt)


def _process(item: WorkItem, services: Services, attempt: int) -> None:
    try:
        raw = load_event(item, services.state)
    except ClaimMissing as gone:
        _audit(services, item, "ignored", str(gone))
        return
    try:
        event = parse_event(raw)
        if not intake.claimed(item, event, services.state, services.clock):
            _forget_claim(item, services)
            return
        react(event, services)
    except Exception as error:
        if isinstance(error, Busy) and redeliver(item, services, error):
            return
        reason = f"attempt {attempt}: {type(error).__name__}: {error}"
        failure = WorkFailure(event_id=item.event_id, error=reason, time=services.clock())
        services.state.work_failures.put(item.key, failure)
        _audit(services, item, "error", reason)
        raise
    telemetry.reacted(event.event_type, event.time)
    _forget_claim(item, services)


def _forget_claim(item: WorkItem, services: Services) -> None:
    """Delete the item's claim check, once its delivery is handled or found a duplicate."""
    if item.claim is not None:
        services.state.claims.delete(item.claim)


def load_event(item: WorkItem, state: Stores) -> object:
    """The event a work item carries, or the one its claim check refers to."""
    if item.claim is None:
        return item.event
    stored = state.claims.get(item.claim)
    if stored is None:
        raise ClaimMissing(f"claim {item.claim} was already handled and deleted (a repeated delivery)")
    return stored.event


def redelivery_delay(redeliveries: int, retry_after: float | None = None) -> float:
    """Seconds before the next delivery: exponential by re-delivery, jittered so that contenders part."""
    delay = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2**redeliveries)
    delay *= 1 + random.uniform(0, JITTER)
    return max(delay, min(MAX_DELAY_SECONDS, retry_after or 0))


def redeliver(item: WorkItem, services: Services, error: Busy) -> bool:
    """Put the item back on the queue, visible after a delay; False when its re-deliveries are spent
    or the queue cannot take it (then the caller fails as usual and the queue retries)."""
    done = item.redeliveries
    if done >= MAX_REDELIVERIES:
        return False
    delay = redelivery_delay(done, error.retry_after)
    try:
        services.work_queue.send(item.model_copy(update={"redeliveries": done + 1}).message(), delay_seconds=delay)
    except Exception:
        log.exception("could not re-deliver work item %s", item.key)
        return False
    _audit(services, item, "deferred",
           f"{type(error).__name__}: {error}; delivered again in {delay:.0f} s (re-delivery {done + 1} of "
           f"{MAX_REDELIVERIES})")
    return True


def react(event: AmlEvent, services: Services) -> None:
    from shared.reactor import reactions

    reactions.react(event, services)


def _audit(services: Services, item: WorkItem, outcome: str, reason: str) -> None:
    services.state.audit(
        AuditEntry(
            time=services.clock(),
            correlation_id=item.event_id or item.key,
            subject=item.subject,
            action="react",
            outcome=outcome,
            reason=reason,
        )
    )


def dead_letter(body: bytes, dequeue_count: int, services: Services) -> str:
    """Keep a message that failed every attempt, with its last error, for replay; return its key."""
    text = body.decode("utf-8", errors="replace")
    item = WorkItem.read(text)
    key = item.key if item else "unreadable-" + hashlib.sha256(body).hexdigest()[:32]
    failure = services.state.work_failures.get(key) if item else None
    reason = failure.error if failure else "the message could not be read as a work item"
    # One dead letter per work item until it is replayed: a poison message delivered again (its visibility
    # timeout ran out while it was being kept) finds it kept, and is not kept twice.
    if not services.state.dead_letters.create(key, DeadLetter(message=text, dequeue_count=dequeue_count,
                                                              reason=reason, time=services.clock())):
        return key
    services.state.audit(
        AuditEntry(
            time=services.clock(),
            correlation_id=(item.event_id if item else "") or key,
            subject="aml-work",
            action="dead-letter",
            outcome="poisoned",
            reason=f"failed {dequeue_count} times; last error: {reason}",
        )
    )
    return key
