"""The local host's Event Grid webhook answers bad deliveries 400, as the Functions host does, never 500."""

from __future__ import annotations

import json

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
