"""The local host's Event Grid webhook answers bad deliveries 400, as the Functions host does, never 500."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from devhost.queues import QueueOptions
from devhost.webhooks import deliver


def refuse(_: dict) -> None:
    raise AssertionError("a bad delivery must not reach the function")


def test_a_body_nested_deeper_than_the_parser_goes_is_not_json() -> None:
    reply = deliver({}, b"[" * 5000 + b"]" * 5000, refuse)
    assert reply.status == 400


def test_a_subscription_validation_whose_data_is_not_an_object_is_refused() -> None:
    body = json.dumps([{"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": "x"}])
    reply = deliver({"aeg-event-type": "SubscriptionValidation"}, body.encode(), refuse)
    assert reply.status == 400


def test_the_events_of_one_delivery_run_at_once_as_the_extension_runs_them() -> None:
    """One slow event no longer holds the rest: an array of 1,000 is answered in far less than 1,000 calls' time."""
    together = threading.Barrier(4, timeout=10)
    body = json.dumps([{"id": str(i)} for i in range(4)]).encode()
    with ThreadPoolExecutor(4) as pool:
        reply = deliver({"aeg-event-type": "Notification"}, body, lambda event: together.wait(), pool)
    assert reply.status == 202, "all four were in their invocation at the same time"


def test_a_failing_event_among_concurrent_ones_makes_the_delivery_a_500() -> None:
    def invoke(event: dict) -> None:
        if event["id"] == "2":
            raise RuntimeError("storage unavailable")

    body = json.dumps([{"id": str(i)} for i in range(5)]).encode()
    with ThreadPoolExecutor(4) as pool:
        reply = deliver({"aeg-event-type": "Notification"}, body, invoke, pool)
    assert (reply.status, reply.body) == (500, b"1 of 5 invocations failed")


def test_the_queue_options_fetch_the_next_batch_at_half_a_batch_as_the_host_does() -> None:
    assert QueueOptions.from_host_json({"extensions": {"queues": {"batchSize": 8}}}).new_batch_threshold == 4
    options = QueueOptions.from_host_json({"extensions": {"queues": {"batchSize": 8, "newBatchThreshold": 1}}})
    assert options.new_batch_threshold == 1
