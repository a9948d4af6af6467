"""The queue worker: runs the reaction to one queued event, and records dead letters.

Contention is not failure. A work item that meets a lock or lease held by someone else (a
lifecycle being reconciled elsewhere, an endpoint's lease, a record changed under it) or a
platform that says "busy, try later" is put back on the queue to be seen again after a delay
that grows with each re-delivery, and the current delivery completes. Raising instead would
spend the queue's 5 dequeues within seconds and dead-letter an item that would have
succeeded a minute later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from typing import Any

from shared.adapters import telemetry
from shared.adapters.storage.state import BlobStateStore, Conflict
from shared.bootstrap import Services
from shared.domain.events import AmlEvent, parse_event
from shared.domain.records import AuditEntry
from shared.reactor.intake import CLAIMS

log = logging.getLogger(__name__)

# Re-deliveries after contention wait FIRST_DELAY * 2^n seconds (n = re-deliveries so far), at most
# MAX_DELAY, up to MAX_REDELIVERIES times (about 20 minutes in all); then the item fails as any other.
FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 300.0
MAX_REDELIVERIES = 10
JITTER = 0.2


class ClaimMissing(LookupError):
    """The claim-checked event is gone: its item was handled (and the claim deleted) already."""


def process(item: dict[str, Any], services: Services, attempt: int = 1) -> None:
    """Run the reaction to a queued event. Contention re-delivers the item later; other
    exceptions propagate so the queue retries it.

    It runs in the `react` span, a child of the intake's span through the item's `traceparent`.
    """
    with telemetry.span("react", parent=item.get(telemetry.TRACEPARENT), kind="consumer", attempt=attempt,
                        **telemetry.event_dimensions(item.get("event"))):
        _process(item, services, attempt)


def _process(item: dict[str, Any], services: Services, attempt: int) -> None:
    try:
        raw = load_event(item, services.state)
    except ClaimMissing as gone:
        _audit(services, item, "ignored", str(gone))
        return
    try:
        event = parse_event(raw)
        react(event, services)
    except Exception as error:
        if contention(error) and redeliver(item, services, error):
            return
        reason = f"attempt {attempt}: {type(error).__name__}: {error}"
        services.state.put("failures", str(item.get("key")),
                           {"event_id": _event_id(item), "error": reason, "time": services.clock().isoformat()})
        _audit(services, item, "error", reason)
        raise
    telemetry.reacted(event.event_type, event.time)
    if item.get("claim") is not None:
        services.state.delete(CLAIMS, str(item["claim"]))


def load_event(item: dict[str, Any], state: BlobStateStore) -> object:
    """The event a work item carries, or the one its claim check refers to."""
    claim = item.get("claim")
    if claim is None:
        return item.get("event")
    stored = state.get(CLAIMS, str(claim))
    if stored is None:
        raise ClaimMissing(f"claim {claim} was already handled and deleted (a repeated delivery)")
    return stored["event"]


def contention(error: BaseException) -> bool:
    """Whether the error means "someone else holds it, or the platform is busy": worth waiting for."""
    from shared.domain.ports import TryLater
    from shared.reactor.rollout import RolloutBusy

    return isinstance(error, TryLater | Conflict | RolloutBusy)


def redelivery_delay(redeliveries: int, retry_after: float | None = None) -> float:
    """Seconds before the next delivery: exponential by re-delivery, jittered so that contenders part."""
    delay = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2**redeliveries)
    delay *= 1 + random.uniform(0, JITTER)
    return max(delay, min(MAX_DELAY_SECONDS, retry_after or 0))


def redeliver(item: dict[str, Any], services: Services, error: Exception) -> bool:
    """Put the item back on the queue, visible after a delay; False when its re-deliveries are spent
    or the queue cannot take it (then the caller fails as usual and the queue retries)."""
    done = int(item.get("redeliveries") or 0)
    if done >= MAX_REDELIVERIES:
        return False
    delay = redelivery_delay(done, getattr(error, "retry_after", None))
    try:
        services.work_queue.send({**item, "redeliveries": done + 1}, delay_seconds=delay)
    except Exception:
        log.exception("could not re-deliver work item %s", item.get("key"))
        return False
    _audit(services, item, "deferred",
           f"{type(error).__name__}: {error}; delivered again in {delay:.0f} s (re-delivery {done + 1} of "
           f"{MAX_REDELIVERIES})")
    return True


def react(event: AmlEvent, services: Services) -> None:
    from shared.reactor import reactions

    reactions.react(event, services)


def _event_id(item: dict[str, Any]) -> str:
    raw = item.get("event")
    return str(raw.get("id", "")) if isinstance(raw, dict) else ""


def _audit(services: Services, item: dict[str, Any], outcome: str, reason: str) -> None:
    raw = item.get("event")
    services.state.audit(
        AuditEntry(
            time=services.clock(),
            correlation_id=_event_id(item) or str(item.get("key")),
            subject=str(raw.get("subject", "")) if isinstance(raw, dict) else "",
            action="react",
            outcome=outcome,
            reason=reason,
        )
    )


def dead_letter(body: bytes, dequeue_count: int, services: Services) -> str:
    """Keep a message that failed every attempt, with its last error, for replay; return its key."""
    text = body.decode("utf-8", errors="replace")
    try:
        item = json.loads(text)
        key, event_id = str(item["key"]), str(item["event"].get("id", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        item, key, event_id = None, "unreadable-" + hashlib.sha256(body).hexdigest()[:32], ""
    failure = services.state.get("failures", key) if item else None
    reason = failure["error"] if failure else "the message could not be read as a work item"
    services.state.put(
        "deadletter",
        key,
        {"message": text, "dequeue_count": dequeue_count, "reason": reason, "time": services.clock().isoformat()},
    )
    services.state.audit(
        AuditEntry(
            time=services.clock(),
            correlation_id=event_id or key,
            subject="aml-work",
            action="dead-letter",
            outcome="poisoned",
            reason=f"failed {dequeue_count} times; last error: {reason}",
        )
    )
    return key
