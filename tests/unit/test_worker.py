"""The queue worker: contention re-delivers later instead of spending the queue's attempts; claim checks."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from shared.adapters.storage.state import CHANGED_RETRY_SECONDS
from shared.adapters.storage.stores import Stores
from shared.bootstrap import Services
from shared.domain.events import AmlEvent
from shared.domain.ports import Busy, NotFound, TryLater
from shared.domain.records import AuditEntry
from shared.domain.work import DeadLetter, WorkItem
from shared.reactor import worker
from shared.settings import Settings
from tests.conftest import FIXTURES

MAX_DEQUEUE_COUNT = 5  # host.json


class MemoryState:
    """The parts of BlobStateStore the worker uses, in memory."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict] = {}
        self.entries: list[AuditEntry] = []

    def get(self, kind: str, key: str) -> dict | None:
        return self.docs.get((kind, key))

    def put(self, kind: str, key: str, doc: dict) -> None:
        self.docs[(kind, key)] = json.loads(json.dumps(doc))

    def create(self, kind: str, key: str, doc: dict) -> bool:
        if (kind, key) in self.docs:
            return False
        self.put(kind, key, doc)
        return True

    def delete(self, kind: str, key: str) -> None:
        self.docs.pop((kind, key), None)

    def audit(self, entry: AuditEntry) -> None:
        entry.model_dump_json()  # what the blob store writes must serialise
        self.entries.append(entry)


class MemoryQueue:
    """A Storage queue with the Functions host's retry rules: a raising delivery is retried at once
    (visibility timeout aside) until maxDequeueCount, then the message is poisoned."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.delays: list[float] = []
        self.poisoned: list[dict] = []

    def send(self, item: dict[str, Any], delay_seconds: float = 0) -> None:
        self.messages.append(json.loads(json.dumps(item)))
        self.delays.append(delay_seconds)

    def drain(self, services: Services) -> None:
        while self.messages:
            item = self.messages.pop(0)
            for dequeue_count in range(1, MAX_DEQUEUE_COUNT + 1):
                try:
                    worker.process(WorkItem.model_validate(item), services, attempt=dequeue_count)
                    break
                except Exception:
                    if dequeue_count == MAX_DEQUEUE_COUNT:
                        self.poisoned.append(item)


class Reactions:
    """A reaction that raises the given errors, one per call, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.handled: list[AmlEvent] = []

    def __call__(self, event: AmlEvent, services: Services) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.handled.append(event)


def event() -> dict:
    return json.loads((FIXTURES / "aml-events/docs_eventgrid_schema/model_registered.json").read_text())[0]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch):
    state, queue = MemoryState(), MemoryQueue()
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    services = Services(settings=settings, state=Stores(state), work_queue=queue)  # type: ignore[arg-type]

    def install(reactions: Reactions) -> Reactions:
        monkeypatch.setattr(worker, "react", reactions)
        return reactions

    return state, queue, services, install


def outcomes(state: MemoryState) -> list[str]:
    return [entry.outcome for entry in state.entries]


@pytest.mark.parametrize(
    "busy",
    [
        Busy("lifecycle credit-risk:3 is being reconciled elsewhere"),
        TryLater("online endpoint credit-risk in prod is Updating"),
        Busy("lifecycle/credit-risk:3 changed concurrently", CHANGED_RETRY_SECONDS),
        Busy("rollout credit-risk/credit-risk-v2 is still active on credit-risk"),
    ],
    ids=["lifecycle-lease", "platform-busy", "etag-conflict", "endpoint-taken"],
)
def test_a_contended_work_item_waits_and_succeeds_later_without_a_dead_letter_or_alarm(world, busy) -> None:
    state, queue, services, install = world
    reactions = install(Reactions(*[busy] * 7))  # more contention than the queue's 5 dequeues would survive
    queue.send({"key": "k1", "event": event()})

    queue.drain(services)

    assert len(reactions.handled) == 1, "handled in the end"
    assert queue.poisoned == []
    assert outcomes(state) == ["deferred"] * 7, "no error recorded: no false alarm for ops"
    assert ("failures", "k1") not in state.docs
    delays = queue.delays[1:]
    assert all(later > earlier for earlier, later in itertools.pairwise(delays)), delays
    assert delays[0] >= worker.FIRST_DELAY_SECONDS and max(delays) <= worker.MAX_DELAY_SECONDS * (1 + worker.JITTER)


def test_a_busy_platform_that_names_a_wait_is_given_at_least_that_long(world) -> None:
    _, queue, services, install = world
    install(Reactions(TryLater("throttled", retry_after=45)))
    queue.send({"key": "k2", "event": event()})
    queue.drain(services)
    assert queue.delays[1] >= 45


def test_contention_that_never_ends_fails_in_the_end_as_any_error(world) -> None:
    state, queue, services, install = world
    install(Reactions(*[TryLater("busy")] * 100))
    queue.send({"key": "k3", "event": event()})

    queue.drain(services)

    assert len(queue.poisoned) == 1
    assert queue.poisoned[0]["redeliveries"] == worker.MAX_REDELIVERIES
    assert outcomes(state) == ["deferred"] * worker.MAX_REDELIVERIES + ["error"] * MAX_DEQUEUE_COUNT


def test_other_errors_still_propagate_for_the_queue_to_retry(world) -> None:
    state, queue, services, install = world
    install(Reactions(NotFound("gone"), NotFound("gone")))
    queue.send({"key": "k4", "event": event()})

    queue.drain(services)

    assert queue.poisoned == [] and len(queue.delays) == 1, "retried by the queue, not re-sent"
    assert outcomes(state) == ["error", "error"]
    assert "attempt 2: NotFound" in state.docs[("failures", "k4")]["error"]


def test_a_claim_checked_event_is_read_back_handled_and_its_claim_deleted(world) -> None:
    state, queue, services, install = world
    reactions = install(Reactions(TryLater("busy")))
    raw = event()
    state.put("claims", "k5", {"event": raw, "received": "2026-11-30T10:00:00+00:00"})
    queue.send({"key": "k5", "claim": "k5", "event": {"id": raw["id"], "subject": raw["subject"]}})

    queue.drain(services)

    assert [handled.raw for handled in reactions.handled] == [raw]
    assert ("claims", "k5") not in state.docs, "deleted once handled, kept while waiting"
    assert [entry.correlation_id for entry in state.entries] == [raw["id"]]


def test_a_repeated_delivery_of_a_handled_claim_is_ignored_with_a_reason(world) -> None:
    state, queue, services, install = world
    reactions = install(Reactions())
    queue.send({"key": "k6", "claim": "k6", "event": {"id": "evt-6", "subject": "models/m:1"}})

    queue.drain(services)

    assert reactions.handled == [] and queue.poisoned == []
    assert outcomes(state) == ["ignored"] and "already handled" in state.entries[0].reason


def test_a_redelivery_that_cannot_be_queued_falls_back_to_the_queues_own_retry(world) -> None:
    state, _queue, services, install = world
    install(Reactions(TryLater("busy")))

    def refuse(item: dict, delay_seconds: float = 0) -> None:
        raise OSError("queue unavailable")

    services.work_queue.send = refuse  # type: ignore[method-assign]
    with pytest.raises(TryLater):
        worker.process(WorkItem(key="k7", event=event()), services)
    assert outcomes(state) == ["error"]


def test_a_claim_checked_event_that_keeps_failing_keeps_its_claim_for_replay(world) -> None:
    state, queue, services, install = world
    install(Reactions(*[NotFound("gone")] * MAX_DEQUEUE_COUNT))
    raw = event()
    state.put("claims", "k8", {"event": raw, "received": "2026-11-30T10:00:00+00:00"})
    queue.send({"key": "k8", "claim": "k8", "event": {"id": raw["id"], "subject": raw["subject"]}})

    queue.drain(services)

    assert len(queue.poisoned) == 1
    assert state.get("claims", "k8")["event"] == raw, "a replayed dead letter finds the event again"
    key = worker.dead_letter(json.dumps(queue.poisoned[0]).encode(), MAX_DEQUEUE_COUNT, services)
    assert key == "k8" and "attempt 5: NotFound" in state.get("deadletter", "k8")["reason"]


def test_a_work_item_s_message_is_the_json_the_queue_always_carried() -> None:
    first = {"key": "k9", "event": event(), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert WorkItem.model_validate(first).message() == first, "no claim, no redeliveries: not written"
    again = {"key": "k9", "claim": "k9", "event": {"id": "evt-9", "subject": "models/m:1"}, "redeliveries": 2,
             "added_by_a_newer_app": True}
    item = WorkItem.model_validate(again)
    assert (item.claim, item.redeliveries, item.event_id, item.subject) == ("k9", 2, "evt-9", "models/m:1")
    assert item.message() == again, "what a newer app added is kept"


@pytest.mark.parametrize("message", ["not json", "[1, 2]", '{"event": {"id": "e"}}', '{"key": "k", "event": "x"}'])
def test_a_message_that_is_no_work_item_is_dead_lettered_as_unreadable(world, message: str) -> None:
    state, _queue, services, _install = world
    assert WorkItem.read(message) is None

    key = worker.dead_letter(message.encode(), MAX_DEQUEUE_COUNT, services)

    assert key.startswith("unreadable-")
    letter = DeadLetter.model_validate(state.get("deadletter", key))
    assert letter.message == message and letter.work_item() is None
    assert letter.reason == "the message could not be read as a work item"


def test_a_poison_message_delivered_again_is_kept_once_with_its_first_time_and_audited_once(world) -> None:
    """The poison queue may deliver a message again (its visibility timeout ran out while it was being kept):
    the dead letter stays as first kept, listed and audited once."""
    state, _queue, services, _install = world
    body = json.dumps({"key": "k-poison", "event": {"id": "evt-p", "eventType": "x", "subject": "s"}}).encode()
    first = worker.dead_letter(body, MAX_DEQUEUE_COUNT, services)
    kept = state.get("deadletter", first)

    assert worker.dead_letter(body, MAX_DEQUEUE_COUNT, services) == first

    assert state.get("deadletter", first) == kept, "the first dead letter, not rewritten with a later time"
    assert [entry.action for entry in state.entries].count("dead-letter") == 1


def delivered(raw: dict, delivery: str, **fields: Any) -> dict:
    """A work item as intake queues one delivery of the event."""
    return {"key": "k10", "event": raw, "delivery": delivery, "received": "2026-11-30T10:00:00+00:00", **fields}


def intake_outcomes(state: MemoryState) -> list[str]:
    return [entry.outcome for entry in state.entries if entry.action == "intake"]


def test_of_two_deliveries_of_one_event_the_worker_handles_the_first_and_audits_the_second_a_duplicate(world) -> None:
    state, queue, services, install = world
    reactions = install(Reactions())
    raw = event()
    queue.send(delivered(raw, "d1"))
    queue.send(delivered(raw, "d2"))

    queue.drain(services)

    assert [handled.raw for handled in reactions.handled] == [raw]
    assert intake_outcomes(state) == ["queued", "duplicate"]
    entry = state.get("ledger", "k10")
    assert entry["delivery"] == "d1" and entry["received"].startswith("2026-11-30T10:00:00"), \
        "the ledger keeps when intake received it, for the reactions that measure how long since"


def test_a_retry_of_the_delivery_that_claimed_the_event_goes_on(world) -> None:
    state, queue, services, install = world
    reactions = install(Reactions(NotFound("not yet"), NotFound("not yet")))
    raw = event()
    queue.send(delivered(raw, "d1"))

    queue.drain(services)

    assert [handled.raw for handled in reactions.handled] == [raw], "the third attempt reacts"
    assert intake_outcomes(state) == ["queued"], "its own claim is no duplicate"


def test_a_replayed_dead_letter_finds_its_own_claim_and_is_handled(world) -> None:
    state, queue, services, install = world
    reactions = install(Reactions(*[NotFound("gone")] * MAX_DEQUEUE_COUNT))
    raw = event()
    queue.send(delivered(raw, "d1"))
    queue.drain(services)
    assert queue.poisoned and not reactions.handled

    queue.send(queue.poisoned.pop())
    queue.drain(services)

    assert [handled.raw for handled in reactions.handled] == [raw]
    assert intake_outcomes(state) == ["queued"]


def test_a_duplicate_s_own_claim_check_is_deleted_and_the_first_keeps_its_own(world) -> None:
    state, queue, services, install = world
    reactions = install(Reactions(TryLater("busy")))
    raw = event()
    reference = {"id": raw["id"], "subject": raw["subject"]}
    for delivery in ("d1", "d2"):
        state.put("claims", f"k10.{delivery}", {"event": raw, "received": "2026-11-30T10:00:00+00:00"})
        queue.send(delivered(reference, delivery, claim=f"k10.{delivery}"))

    queue.drain(services)

    assert [handled.raw for handled in reactions.handled] == [raw]
    assert not [key for kind, key in state.docs if kind == "claims"], "each delivery deleted its own"
    assert intake_outcomes(state) == ["queued", "duplicate"]
