"""Event intake: validate, then record and enqueue in one storage round trip: the queue message is the record.

This runs inside Event Grid's webhook request (30 s budget), so everything else is left to the
queue worker: it claims the event in the ledger for this delivery (a duplicate finds the claim of
another delivery and stops there), audits intake's outcome, then reacts (`shared.reactor.worker`).
Every event ends queued, duplicate, ignored or rejected, and each outcome is in the audit trail;
only a transient storage fault raises, so that Event Grid redelivers. What is acknowledged is on
the queue, so it is handled; a delivery that failed left nothing behind but, at most, a message
that the worker will take as the first delivery or a duplicate: handled once in effect.

Each delivery gets its own id (`WorkItem.delivery`): the ledger entry names the delivery that
claimed the event, so the queue's retries of that delivery go on, and other deliveries stop.
An event that intake cannot process (rejected or ignored) is set aside and audited at once: it
never reaches the queue.

Intake has the state store and the work queue it is given (`fast_stores`), not the app's
`Services`: the time comes as the clock the caller passes (`Services.clock`).

An event too large for a queue message (Storage queues hold 64 KiB, Event Grid delivers
up to 1 MiB) goes through a claim check: the event is kept in the state store
(`records/claims/<ledger key>.<delivery>.json`, one per delivery, so that a duplicate's never
outlives it) and the queue gets a reference, which the worker resolves
(`shared.reactor.worker.load_event`) and deletes once the delivery is handled or found a duplicate.
"""

from __future__ import annotations

import enum
import json
import uuid
from typing import Any

from shared.adapters import telemetry
from shared.adapters.storage.clients import blob_service, queue_service, table_service
from shared.adapters.storage.index import TableIndex, table_name
from shared.adapters.storage.queue import WorkQueue, fits
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Stores
from shared.bindings import WORK_QUEUE
from shared.domain.events import AmlEvent, MalformedEvent, UnknownEventType, dedupe_key, parse_event, storable
from shared.domain.ports import Clock
from shared.domain.records import AuditEntry
from shared.domain.work import Claim, LedgerEntry, SetAside, WorkItem
from shared.settings import Settings


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

    item = work_item(key, event, state, clock)
    try:
        work_queue.send(item.message())
    except Exception:
        if item.claim is not None:  # this delivery's own: Event Grid's redelivery keeps its event anew
            state.claims.delete(item.claim)
        raise
    return Outcome.QUEUED


def work_item(key: str, event: AmlEvent, state: Stores, clock: Clock) -> WorkItem:
    """The work item for a delivery of an event: the event itself, or a claim check when it is too large.

    A reference keeps the event's id, subject and type under `event`, so that the worker's error
    records, dead letters, their replay and telemetry read it like any other item.
    """
    delivery, received = uuid.uuid4().hex, clock()
    item = WorkItem(key=key, event=event.raw, traceparent=telemetry.traceparent(), delivery=delivery,
                    received=received)
    if fits(item.message()):
        return item
    claim = f"{key}.{delivery}"
    state.claims.put(claim, Claim(event=event.raw, received=received))
    return item.model_copy(update={"claim": claim, "event": {
        "id": event.id, "subject": event.subject[:300], "eventType": event.event_type}})


def claimed(item: WorkItem, event: AmlEvent, state: Stores, clock: Clock) -> bool:
    """Claim the event in the ledger for the item's delivery, and audit intake's outcome; False for a duplicate.

    Of several deliveries of one event, exactly one claims it (the ledger entry is created with
    If-None-Match: *); a retry of that delivery (the queue's, or a replay of its dead letter) finds
    its own claim and goes on, unaudited. An item queued by an intake that claimed the event itself
    (no `delivery`) is claimed already.
    """
    if item.delivery is None:
        return True
    received = item.received or clock()
    entry = LedgerEntry(event_id=event.id, type=event.event_type, subject=event.subject, received=received,
                        delivery=item.delivery)
    if state.ledger.create(item.key, entry):
        _audit(state, clock, event.id, event.subject, Outcome.QUEUED, f"{event.kind.value} queued for the worker")
        return True
    found = state.ledger.get(item.key)
    if found is not None and found.delivery == item.delivery:
        return True
    _audit(state, clock, event.id, event.subject, Outcome.DUPLICATE, "event id already in the ledger")
    return False


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
