"""Each channel against the local webhook receiver, over real HTTP."""

from __future__ import annotations

import base64

import pytest
from azure.core.credentials import AzureKeyCredential

from devhost.receiver import Receiver, Reply
from shared.adapters.notify import DeliveryError, RetryPolicy
from shared.adapters.notify.eventgrid import EventGridChannel
from shared.adapters.notify.slack import SlackChannel
from shared.adapters.notify.teams import TeamsChannel
from shared.adapters.notify.webhook import WebhookChannel, message_id
from shared.domain.notification import Notification, Table
from tests.integration.conftest import SECRET

OTHER_SECRET = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
FAST = RetryPolicy(attempts=4, total_seconds=20, first_delay=0.05, max_delay=0.2, read_timeout=5)


def rejected() -> Notification:
    return Notification(
        id="model.rejected:credit-risk:3",
        kind="model.rejected",
        title="credit-risk 3 rejected",
        summary="accuracy 0.81 is under 0.85",
        severity="error",
        subject="credit-risk:3",
        facts=(("model", "credit-risk"), ("version", "3")),
        table=Table(header=("gate", "metric", "value", "threshold", "result"),
                    rows=(("min-accuracy", "accuracy", "0.81", ">= 0.85", "fail"),)),
    )


def test_teams_posts_an_adaptive_card_message(receiver: Receiver) -> None:
    TeamsChannel(receiver.url + "/workflows/ops?sig=secret-sig", FAST).send(rejected())

    [got] = receiver.received
    assert got.path == "/workflows/ops?sig=secret-sig"
    assert got.headers["content-type"] == "application/json"
    [attachment] = got.body["attachments"]
    assert (got.body["type"], attachment["contentType"]) == ("message", "application/vnd.microsoft.card.adaptive")
    assert attachment["content"]["body"][0]["text"] == "credit-risk 3 rejected"


def test_slack_posts_blocks_with_a_fallback(receiver: Receiver) -> None:
    SlackChannel(receiver.url + "/services/T0/B0/XYZ", FAST).send(rejected())

    [got] = receiver.received
    assert got.body["text"] == "credit-risk 3 rejected: accuracy 0.81 is under 0.85"
    assert got.body["blocks"][0] == {
        "type": "header", "block_id": "title", "text": {"type": "plain_text", "text": "credit-risk 3 rejected"}
    }


def test_webhook_delivery_is_signed_and_verifies_with_the_secret(receiver: Receiver) -> None:
    WebhookChannel(receiver.url + "/hooks/ops", SECRET, FAST).send(rejected())

    [got] = receiver.received
    assert got.signature_valid is True
    assert got.headers["webhook-id"] == message_id(rejected())
    assert got.headers["webhook-signature"].startswith("v1,")
    assert (got.body["type"], got.body["data"]["id"]) == ("model.rejected", "model.rejected:credit-risk:3")


def test_a_signature_made_with_another_secret_does_not_verify(receiver: Receiver) -> None:
    WebhookChannel(receiver.url + "/hooks/ops", OTHER_SECRET, FAST).send(rejected())

    assert [got.signature_valid for got in receiver.received] == [False]


def test_unsigned_channels_are_not_reported_as_signed(receiver: Receiver) -> None:
    TeamsChannel(receiver.url + "/teams", FAST).send(rejected())

    assert [got.signature_valid for got in receiver.received] == [None]


def test_a_503_is_retried_until_200(receiver: Receiver) -> None:
    receiver.script(503, 503)

    WebhookChannel(receiver.url + "/hooks/ops", SECRET, FAST).send(rejected())

    assert [got.status for got in receiver.received] == [503, 503, 200]
    assert len({got.headers["webhook-id"] for got in receiver.received}) == 1
    assert all(got.signature_valid for got in receiver.received)


def test_a_429_waits_at_least_its_retry_after(receiver: Receiver) -> None:
    receiver.script(Reply(429, {"Retry-After": "1"}))

    SlackChannel(receiver.url + "/services/T0/B0/XYZ", FAST).send(rejected())

    throttled, accepted = receiver.received
    assert (throttled.status, accepted.status) == (429, 200)
    assert accepted.at - throttled.at >= 1.0


def test_a_400_is_a_permanent_failure_named_without_the_url_secret(receiver: Receiver) -> None:
    receiver.script(400)

    with pytest.raises(DeliveryError) as error:
        TeamsChannel(receiver.url + "/workflows/ops?sig=TOPSECRET", FAST).send(rejected())

    assert (error.value.channel, error.value.status, error.value.permanent) == ("teams", 400, True)
    assert str(error.value).startswith(f"teams: permanent failure: HTTP 400 from {receiver.url}")
    assert "TOPSECRET" not in str(error.value)
    assert len(receiver.received) == 1


def test_an_endpoint_that_keeps_failing_gives_up_after_the_attempts(receiver: Receiver) -> None:
    receiver.script(*[500] * 10)

    with pytest.raises(DeliveryError, match="slack: failed: HTTP 500") as error:
        SlackChannel(receiver.url + "/services/T0/B0/XYZ", FAST).send(rejected())

    assert error.value.permanent is False
    assert len(receiver.received) == FAST.attempts


def test_a_closed_port_is_a_connection_error_named_without_the_path() -> None:
    with Receiver() as closed:
        url = closed.url + "/services/T0/B0/TOPSECRET"
    with pytest.raises(DeliveryError, match=r"slack: failed: ConnectionError talking to http://127\.0\.0\.1") as error:
        SlackChannel(url, RetryPolicy(attempts=2, first_delay=0.01, connect_timeout=1)).send(rejected())
    assert "TOPSECRET" not in str(error.value)


def test_event_grid_publishes_a_cloud_event(receiver: Receiver) -> None:
    channel = EventGridChannel(receiver.url + "/api/events", AzureKeyCredential("topic-key"), policy=FAST)

    channel.send(rejected())

    [got] = receiver.received
    assert got.path == "/api/events?api-version=2018-01-01"
    assert got.headers["content-type"] == "application/cloudevents-batch+json; charset=utf-8"
    assert got.headers["aeg-sas-key"] == "topic-key"
    [event] = got.body
    assert {key: event[key] for key in ("specversion", "id", "source", "type", "subject", "datacontenttype")} == {
        "specversion": "1.0",
        "id": "model.rejected:credit-risk:3",
        "source": "/aml-reactor",
        "type": "AmlReactor.ModelRejected",
        "subject": "credit-risk:3",
        "datacontenttype": "application/json",
    }
    assert event["data"]["table"]["rows"] == [["min-accuracy", "accuracy", "0.81", ">= 0.85", "fail"]]


def test_event_grid_retries_a_throttled_publish_after_its_retry_after(receiver: Receiver) -> None:
    receiver.script(Reply(429, {"Retry-After": "1"}), Reply(503))
    channel = EventGridChannel(receiver.url + "/api/events", AzureKeyCredential("topic-key"), policy=FAST)

    channel.send(rejected())

    assert [got.status for got in receiver.received] == [429, 503, 200]
    assert receiver.received[1].at - receiver.received[0].at >= 1.0


def test_event_grid_refusal_is_permanent(receiver: Receiver) -> None:
    receiver.script(403)
    channel = EventGridChannel(receiver.url + "/api/events", AzureKeyCredential("topic-key"), policy=FAST)

    with pytest.raises(DeliveryError, match="eventgrid: permanent failure: HTTP 403") as error:
        channel.send(rejected())
    assert "topic-key" not in str(error.value)
