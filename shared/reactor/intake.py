"""Event intake: validate, de-duplicate, record and enqueue; nothing slow.

This runs inside Event Grid's webhook request (30 s budget), so the reaction itself is
left to the queue worker. Every event ends queued, duplicate, ignored or rejected, and
each outcome is in the audit trail; only a transient storage fault raises, so that
Event Grid redelivers.

Intake has the state store and the work queue it is given (`fast_stores`), not the app's
`Services`: the time comes as the clock the caller passes (`Services.clock`).

An event too large for a queue message (Storage queues hold 64 KiB, Event Grid delivers
up to 1 MiB) goes through a claim check: the event is kept in the state store
(`records/claims/<ledger key>.json`) and the queue gets a reference, which the worker
resolves (`shared.reactor.worker.load_event`) and deletes once the event is handled.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from shared.adapters import telemetry
from shared.adapters.storage.clients import blob_service, queue_service, table_service
from shared.adapters.storage.index import TableIndex, table_name
from shared.adapters.storage.queue import WorkQueue, fits
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Stores
from shared.domain.events import AmlEvent, MalformedEvent, UnknownEventType, dedupe_key, parse_event, storable
from shared.domain.ports import Clock
from shared.domain.records import AuditEntry
from shared.domain.work import Claim, LedgerEntry, SetAside, WorkItem
from shared.settings import Settings

WORK_QUEUE = "aml-work"


class Outcome(enum.StrEnum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    REJECTED = "rejected"


def fast_stores(settings: Settings) -> tuple[Stores, WorkQueue]:
    """The state store and work queue for intake, on clients that fail within seconds in a storage
    outage (`shared.adapters.storage.clients`): the webhook then answers 5xx quickly and Event Grid redelivers."""
    state = Stores(BlobStateStore(blob_service(settings, fast=True), settings.state_container),
                   TableIndex(table_service(settings, fast=True), table_name(settings.state_container)))
    return state, WorkQueue(queue_service(settings, fast=True), WORK_QUEUE)


def receive(raw: dict[str, Any], state: Stores, work_queue: WorkQueue, *, clock: Clock) -> Outcome:
    """Take one delivered event to its intake outcome (in the `intake` span, whose context the work item carries)."""
    dimensions = telemetry.event_dimensions(raw)
    with telemetry.span("intake", kind="consumer", **dimensions) as span:
        outcome = _receive(raw, state, work_queue, clock)
        span.set(outcome=outcome.value)
    telemetry.count_event(dimensions.get("event_type", ""), outcome.value)
    return outcome


def _receive(raw: dict[str, Any], state: Stores, work_queue: WorkQueue, clock: Clock) -> Outcome:
    key = dedupe_key(raw) if isinstance(raw, dict) else "not-an-object"
    try:
        event = parse_event(raw)
    except UnknownEventType as error:
        return _set_aside(state, key, raw, Outcome.IGNORED, str(error), clock)
    except MalformedEvent as error:
        return _set_aside(state, key, raw, Outcome.REJECTED, str(error), clock)

    claimed = state.ledger.create(
        key, LedgerEntry(event_id=event.id, type=event.event_type, subject=event.subject, received=clock())
    )
    if not claimed:
        _audit(state, clock, event.id, event.subject, Outcome.DUPLICATE, "event id already in the ledger")
        return Outcome.DUPLICATE
    item: WorkItem | None = None
    try:
        item = work_item(key, event, state, clock)
        work_queue.send(item.message())
    except Exception:
        # Release the claim so Event Grid's redelivery is not mistaken for a duplicate.
        state.ledger.delete(key)
        if item is not None and item.claim is not None:
            state.claims.delete(key)
        raise
    _audit(state, clock, event.id, event.subject, Outcome.QUEUED, f"{event.kind.value} queued for the worker")
    return Outcome.QUEUED


def work_item(key: str, event: AmlEvent, state: Stores, clock: Clock) -> WorkItem:
    """The work item for an event: the event itself, or a claim check when it is too large.

    A reference keeps the event's id and subject under `event`, so that the worker's error
    records, dead letters and their replay read it like any other item.
    """
    item = WorkItem(key=key, event=event.raw, traceparent=telemetry.traceparent())
    if fits(item.message()):
        return item
    state.claims.put(key, Claim(event=event.raw, received=clock()))
    return WorkItem(key=key, claim=key, event={"id": event.id, "subject": event.subject[:300]},
                    traceparent=telemetry.traceparent())


def _set_aside(state: Stores, key: str, raw: object, outcome: Outcome, reason: str, clock: Clock) -> Outcome:
    """Keep an event that will not be processed, with the reason, for replay or diagnosis.

    What is kept is made storable (lone surrogates escaped, deep nesting cut): the reason says
    what was wrong with the original.
    """
    kept = storable(raw)
    event_id = str(kept.get("id", ""))[:300] if isinstance(kept, dict) else ""
    state.set_aside[outcome.value].put(key, SetAside(reason=reason, received=clock(), event=kept))
    _audit(state, clock, event_id or key, _subject(kept), outcome, reason)
    return outcome


def _subject(raw: object) -> str:
    if isinstance(raw, dict):
        return str(raw.get("subject", ""))[:300]
    return json.dumps(raw, default=str)[:300]


def _audit(state: Stores, clock: Clock, correlation_id: str, subject: str, outcome: Outcome, reason: str) -> None:
    state.audit(
        AuditEntry(
            time=clock(), correlation_id=correlation_id, subject=subject, action="intake", outcome=outcome.value,
            reason=reason,
        )
    )
