"""Intake on Azurite: one queue message per event, the claim check of large events, invalid Unicode, and failing
fast in an outage."""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
from azure.core.exceptions import AzureError

from devhost.azurite import free_port, running_azurite
from shared.adapters.storage.clients import queue_service
from shared.adapters.storage.queue import MAX_MESSAGE_BYTES, WorkQueue
from shared.adapters.storage.stores import Stores
from shared.bootstrap import system_clock
from shared.domain.work import WorkItem
from shared.reactor import intake, worker
from shared.reactor.intake import Outcome
from shared.settings import Settings
from tests.conftest import FIXTURES


def registered_event(**tags: str) -> dict:
    event = json.loads((FIXTURES / "aml-events/docs_eventgrid_schema/model_registered.json").read_text())[0]
    event["id"] = str(uuid.uuid4())
    event["data"]["ModelTags"] = tags
    return event


@pytest.fixture
def stores(settings: Settings) -> tuple[Stores, WorkQueue]:
    state, _ = intake.fast_stores(settings)
    return state, WorkQueue(queue_service(settings, fast=True), f"work-{uuid.uuid4().hex[:12]}")


def queued_items(queue: WorkQueue, key: str) -> list[dict]:
    items = [json.loads(message.content) for message in queue.client.peek_messages(max_messages=32)]
    assert all(item["key"] == key for item in items)
    return items


def test_intake_writes_the_queue_message_only_and_the_worker_claims_and_audits(stores) -> None:
    state, queue = stores
    event = registered_event()
    key = intake.dedupe_key(event)

    assert intake.receive(copy.deepcopy(event), state, queue, clock=system_clock) is Outcome.QUEUED
    assert intake.receive(copy.deepcopy(event), state, queue, clock=system_clock) is Outcome.QUEUED

    first, second = queued_items(queue, key)
    assert first["delivery"] != second["delivery"], "each delivery is told apart"
    assert state.ledger.get(key) is None and state.read_audit() == [], "nothing but the message before the answer"
    parsed = intake.parse_event(event)
    assert intake.claimed(WorkItem.model_validate(first), parsed, state, system_clock)
    assert intake.claimed(WorkItem.model_validate(first), parsed, state, system_clock), "its retry goes on"
    assert not intake.claimed(WorkItem.model_validate(second), parsed, state, system_clock)
    assert [(e.action, e.outcome) for e in state.read_audit()] == [("intake", "queued"), ("intake", "duplicate")]


def test_an_event_too_large_for_a_queue_message_is_queued_by_claim_check(stores) -> None:
    state, queue = stores
    event = registered_event(**{f"tag{i}": "x" * 1000 for i in range(900)})  # ~900 KB
    key = intake.dedupe_key(event)

    assert intake.receive(copy.deepcopy(event), state, queue, clock=system_clock) is Outcome.QUEUED

    [item] = queued_items(queue, key)
    assert len(json.dumps(item)) < 1024, "the queue holds a small reference"
    assert item["claim"] == f"{key}.{item['delivery']}" and item["event"]["id"] == event["id"]
    assert worker.load_event(WorkItem.model_validate(item), state) == event, "the worker reads the whole event back"


def test_an_event_that_fits_is_queued_as_it_is(stores) -> None:
    state, queue = stores
    event = registered_event(note="y" * (MAX_MESSAGE_BYTES - 2000))
    assert intake.receive(event, state, queue, clock=system_clock) is Outcome.QUEUED
    [item] = queued_items(queue, intake.dedupe_key(event))
    assert item == {"key": intake.dedupe_key(event), "event": event, "delivery": item["delivery"],
                    "received": item["received"]}
    assert state.claims.items() == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(id=e["id"] + "\ud800"), "'id' is not valid Unicode"),
        (lambda e: e.update(subject="models/\udc00:1"), "'subject' is not valid Unicode"),
        (lambda e: e.update(id=e["id"] + "\x00"), "'id' contains a control character"),
        (lambda e: e["data"].update(ModelTags={"\udfff": "x"}), "a key in 'data.ModelTags'"),
    ],
)
def test_an_event_with_invalid_unicode_is_rejected_with_the_reason_and_kept(stores, change, reason) -> None:
    state, queue = stores
    event = registered_event()
    change(event)

    assert intake.receive(event, state, queue, clock=system_clock) is Outcome.REJECTED

    [entry] = [e for e in state.read_audit() if e.action == "intake"]
    assert entry.outcome == "rejected" and reason in entry.reason
    [kept] = state.set_aside["rejected"].list()
    assert reason in kept.reason
    assert kept.event["data"]["ModelName"] == event["data"]["ModelName"], "kept for diagnosis"


def test_an_event_nested_too_deep_is_rejected_and_kept_cut(stores) -> None:
    state, queue = stores
    value: object = "leaf"
    for _ in range(900):
        value = [value]
    event = registered_event()
    event["data"]["ModelTags"] = {"deep": value}

    assert intake.receive(event, state, queue, clock=system_clock) is Outcome.REJECTED

    [kept] = state.set_aside["rejected"].list()
    assert "nested more than 32 levels" in kept.reason


def test_in_a_storage_outage_intake_fails_within_seconds(settings: Settings) -> None:
    closed = free_port()
    down = settings.model_copy(update={"storage_connection": (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;"
    )})
    state, queue = intake.fast_stores(down)
    started = time.monotonic()
    with pytest.raises(AzureError):
        intake.receive(registered_event(), state, queue, clock=system_clock)
    assert time.monotonic() - started < 5


def test_when_storage_stops_mid_way_intake_fails_within_seconds(settings: Settings) -> None:
    with running_azurite() as azurite:
        up = settings.model_copy(update={"storage_connection": azurite.connection_string})
        state, queue = intake.fast_stores(up)
        assert intake.receive(registered_event(), state, queue, clock=system_clock) is Outcome.QUEUED
        azurite.process.send_signal(2)  # SIGINT: Azurite stops at once
        azurite.process.wait(timeout=10)
        started = time.monotonic()
        with pytest.raises(AzureError):
            intake.receive(registered_event(), state, queue, clock=system_clock)
        assert time.monotonic() - started < 5


def test_a_claim_check_that_cannot_be_queued_is_released_for_the_redelivery(stores) -> None:
    state, queue = stores
    event = registered_event(**{f"tag{i}": "x" * 1000 for i in range(100)})
    key = intake.dedupe_key(event)

    def refuse(item: dict, delay_seconds: float = 0) -> None:
        raise AzureError("queue unavailable")

    working_send, queue.send = queue.send, refuse  # type: ignore[method-assign]
    with pytest.raises(AzureError):
        intake.receive(event, state, queue, clock=system_clock)
    assert state.claims.items() == [] and state.ledger.get(key) is None

    queue.send = working_send  # type: ignore[method-assign]
    assert intake.receive(event, state, queue, clock=system_clock) is Outcome.QUEUED, \
        "Event Grid's redelivery is not a duplicate"
