"""Event intake: validate, de-duplicate, record and enqueue; nothing slow.

This runs inside Event Grid's webhook request (30 s budget), so the reaction itself is
left to the queue worker. Every event ends queued, duplicate, ignored or rejected, and
each outcome is in the audit trail; only a transient storage fault raises, so that
Event Grid redelivers.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from shared.events import MalformedEvent, UnknownEventType, dedupe_key, parse_event
from shared.storage.queue import WorkQueue
from shared.storage.state import AuditEntry, BlobStateStore, now

WORK_QUEUE = "aml-work"


class Outcome(enum.StrEnum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    REJECTED = "rejected"


def receive(raw: dict[str, Any], state: BlobStateStore, work_queue: WorkQueue) -> Outcome:
    """Take one delivered event to its intake outcome."""
    key = dedupe_key(raw) if isinstance(raw, dict) else "not-an-object"
    try:
        event = parse_event(raw)
    except UnknownEventType as error:
        return _set_aside(state, key, raw, Outcome.IGNORED, str(error))
    except MalformedEvent as error:
        return _set_aside(state, key, raw, Outcome.REJECTED, str(error))

    claimed = state.claim_event(
        key, {"event_id": event.id, "type": event.event_type, "subject": event.subject, "received": now().isoformat()}
    )
    if not claimed:
        _audit(state, event.id, event.subject, Outcome.DUPLICATE, "event id already in the ledger")
        return Outcome.DUPLICATE
    try:
        work_queue.send({"key": key, "event": event.raw})
    except Exception:
        # Release the claim so Event Grid's redelivery is not mistaken for a duplicate.
        state.delete("ledger", key)
        raise
    _audit(state, event.id, event.subject, Outcome.QUEUED, f"{event.kind.value} queued for the worker")
    return Outcome.QUEUED


def _set_aside(state: BlobStateStore, key: str, raw: object, outcome: Outcome, reason: str) -> Outcome:
    """Keep an event that will not be processed, with the reason, for replay or diagnosis."""
    event_id = str(raw.get("id", "")) if isinstance(raw, dict) else ""
    state.put(outcome.value, key, {"reason": reason, "received": now().isoformat(), "event": raw})
    _audit(state, event_id or key, _subject(raw), outcome, reason)
    return outcome


def _subject(raw: object) -> str:
    if isinstance(raw, dict):
        return str(raw.get("subject", ""))[:300]
    return json.dumps(raw, default=str)[:300]


def _audit(state: BlobStateStore, correlation_id: str, subject: str, outcome: Outcome, reason: str) -> None:
    state.audit(
        AuditEntry(
            correlation_id=correlation_id, subject=subject, action="intake", outcome=outcome.value, reason=reason
        )
    )
