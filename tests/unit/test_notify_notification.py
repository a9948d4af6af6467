"""The notification model and the channel renderings, without the network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.adapters.notify import eventgrid, log, slack, teams, webhook
from shared.domain.notification import Notification, Table

SECRET_BYTES = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()


def rejected(**changes: object) -> Notification:
    fields: dict[str, object] = {
        "id": "model.rejected:credit-risk:3",
        "kind": "model.rejected",
        "title": "credit-risk 3 rejected",
        "summary": "2 of 3 gates failed",
        "severity": "error",
        "subject": "credit-risk:3",
        "facts": (("model", "credit-risk"), ("version", "3")),
        "table": Table(
            header=("gate", "metric", "value", "threshold", "result"),
            rows=(("min-accuracy", "accuracy", "0.81", ">= 0.85", "fail"), ("auc", "auc", "0.90", ">= 0.80", "pass")),
        ),
        "link": "https://ml.azure.com/model/credit-risk/3",
        "time": datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    }
    return Notification.model_validate(fields | changes)


def test_an_empty_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="notification id"):
        rejected(id="")


@pytest.mark.parametrize("name", ["a/b", "../x", "model.rejected:credit-risk..v2:3", "-lead", "a b"])
def test_any_id_names_its_delivery_record(name: str) -> None:
    assert rejected(id=name).id == name


def test_a_long_id_is_shortened_the_same_way_every_time_and_keeps_apart_from_others() -> None:
    long = "model.deployed:prod:" + "x" * 300
    shortened = rejected(id=long).id
    assert len(shortened) <= 180 and shortened.startswith("model.deployed:prod:xxx")
    assert rejected(id=long).id == shortened != rejected(id=long + "y").id
    wide = rejected(id="model.deployed:prod:" + "🙂" * 100).id
    assert len(wide.encode()) <= 180 and wide.startswith("model.deployed:prod:🙂")


def test_a_model_deployed_of_12_models_has_its_title_cut_with_an_ellipsis() -> None:
    models = ", ".join(f"credit-risk-segment-{n}:{n}" for n in range(12))
    notification = rejected(title=f"{models} deployed to credit-risk", summary="s" * 5000, subject="e" * 300)
    assert len(notification.title) == 200 and notification.title.endswith("…")
    assert notification.title.startswith("credit-risk-segment-0:0, ")
    assert len(notification.summary) == 2000 and notification.summary.endswith("…")
    assert len(notification.subject) == 200 and notification.subject.endswith("…")


def test_texts_within_their_limits_are_kept_and_a_blank_subject_is_a_dash() -> None:
    notification = rejected(title="t" * 200, summary="s" * 2000, subject=" ")
    assert (notification.title, notification.summary, notification.subject) == ("t" * 200, "s" * 2000, "-")


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="kind"):
        rejected(kind="model.exploded")


def test_a_table_row_of_the_wrong_width_names_the_row() -> None:
    with pytest.raises(ValidationError, match="table row 2 has 1 cells, the header has 2"):
        Table(header=("a", "b"), rows=(("1", "2"), ("3",)))


def test_a_link_must_be_http() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        rejected(link="javascript:alert(1)")


def test_a_naive_time_is_taken_as_utc() -> None:
    assert rejected(time=datetime(2026, 1, 1, 12, 0)).time.tzinfo is UTC


def test_teams_message_is_one_adaptive_card_with_title_facts_table_and_link() -> None:
    payload = teams.message(rejected())

    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, meta, summary, facts, header, *rows = card["body"]
    assert (title["text"], title["color"]) == ("credit-risk 3 rejected", "Attention")
    assert meta["text"].startswith("model.rejected · credit-risk:3 · 2026-11-21 10:00")
    assert summary["text"] == "2 of 3 gates failed"
    assert facts["facts"] == [{"title": "model", "value": "credit-risk"}, {"title": "version", "value": "3"}]
    assert [c["items"][0]["text"] for c in header["columns"]] == ["gate", "metric", "value", "threshold", "result"]
    assert [[c["items"][0]["text"] for c in row["columns"]] for row in rows] == [
        ["min-accuracy", "accuracy", "0.81", ">= 0.85", "fail"],
        ["auc", "auc", "0.90", ">= 0.80", "pass"],
    ]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open", "url": "https://ml.azure.com/model/credit-risk/3"}]


def test_teams_card_leaves_out_what_the_notification_lacks() -> None:
    card = teams.card(rejected(summary="", facts=(), table=None, link=None))

    assert [block["type"] for block in card["body"]] == ["TextBlock", "TextBlock"]
    assert "actions" not in card


def test_slack_message_has_a_fallback_text_and_blocks() -> None:
    payload = slack.message(rejected())

    assert payload["text"] == "credit-risk 3 rejected: 2 of 3 gates failed"
    blocks = {block["block_id"]: block for block in payload["blocks"]}
    assert blocks["title"]["text"] == {"type": "plain_text", "text": "credit-risk 3 rejected"}
    assert blocks["meta"]["elements"][0]["text"].startswith("model.rejected · credit-risk:3")
    assert blocks["facts-0"]["fields"][0]["text"] == "*model*\ncredit-risk"
    table = blocks["table"]["text"]["text"]
    assert table.splitlines() == [
        "```gate          metric    value  threshold  result",
        "min-accuracy  accuracy  0.81   &gt;= 0.85    fail",
        "auc           auc       0.90   &gt;= 0.80    pass```",
    ]
    assert blocks["link"]["elements"][0]["url"] == "https://ml.azure.com/model/credit-risk/3"


def test_slack_keeps_block_kit_limits() -> None:
    many = tuple((f"fact {i}", "x") for i in range(23))
    payload = slack.message(rejected(title="t" * 200, summary="s" * 5000, facts=many))

    blocks = {block["block_id"]: block for block in payload["blocks"]}
    assert len(blocks["title"]["text"]["text"]) == 150
    assert len(blocks["summary"]["text"]["text"]) <= 3000
    assert [len(blocks[f"facts-{i}"]["fields"]) for i in range(3)] == [10, 10, 3]


def test_slack_escapes_its_control_characters() -> None:
    payload = slack.message(rejected(summary="a < b & c > d <!channel>"))
    summary = next(b for b in payload["blocks"] if b["block_id"] == "summary")["text"]["text"]
    assert "a &lt; b &amp; c &gt; d &lt;!channel&gt;" in summary


def test_webhook_signature_is_standard_webhooks_hmac_of_id_timestamp_and_body() -> None:
    body = webhook.payload(rejected())
    headers = webhook.signed_headers(webhook.secret_key(SECRET), "msg_1", 1674087231, body)

    expected = hmac.new(SECRET_BYTES, b"msg_1.1674087231." + body, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1674087231",
        "webhook-signature": "v1," + base64.b64encode(expected).decode(),
    }


def test_webhook_payload_is_type_timestamp_and_data() -> None:
    document = json.loads(webhook.payload(rejected()))

    assert document["type"] == "model.rejected"
    assert document["timestamp"] == document["data"]["time"] == "2026-11-21T10:00:00Z"
    assert document["data"]["id"] == "model.rejected:credit-risk:3"
    assert document["data"]["table"]["rows"][0][4] == "fail"


def test_webhook_id_is_stable_per_decision_and_has_no_dot() -> None:
    first, again, other = (webhook.message_id(rejected(id=i)) for i in ("a.b:1", "a.b:1", "a.b:2"))
    assert first == again != other
    assert first.startswith("msg_") and "." not in first


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "prefix is missing"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
    ],
)
def test_a_bad_webhook_secret_is_refused_without_repeating_it(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as error:
        webhook.secret_key(secret)
    assert secret not in str(error.value)


@pytest.mark.parametrize(
    ("kind", "event_type"),
    [
        ("model.rejected", "AmlReactor.ModelRejected"),
        ("rollout.rolled_back", "AmlReactor.RolloutRolledBack"),
        ("retraining.started", "AmlReactor.RetrainingStarted"),
    ],
)
def test_event_grid_types_follow_the_kind(kind: str, event_type: str) -> None:
    assert eventgrid.event_type(kind) == event_type


def test_cloud_event_carries_the_decision_id_and_document() -> None:
    event = eventgrid.cloud_event(rejected())

    assert {k: event[k] for k in ("specversion", "id", "source", "type", "subject")} == {
        "specversion": "1.0",
        "id": "model.rejected:credit-risk:3",
        "source": "/aml-reactor",
        "type": "AmlReactor.ModelRejected",
        "subject": "credit-risk:3",
    }
    assert event["data"] == rejected().document()


def test_log_line_has_kind_subject_title_facts_and_gates(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="aml_reactor.notify"):
        log.LogChannel().send(rejected())

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert message.startswith("[model.rejected] credit-risk:3: credit-risk 3 rejected - 2 of 3 gates failed")
    assert "model=credit-risk, version=3" in message
    assert "gate=min-accuracy metric=accuracy value=0.81 threshold=>= 0.85 result=fail" in message
