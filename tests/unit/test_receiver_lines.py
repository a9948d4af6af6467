"""The notification receiver `./dev host` runs prints one readable line per notification:
its kind, severity and title, whichever channel format carried it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devhost.receiver import Received, describe, summary
from shared.adapters.notify import eventgrid, slack, teams, webhook
from shared.domain.notification import Notification

NOTIFICATION = Notification(
    id="model.rejected:credit-risk:3", kind="model.rejected", severity="error", title="credit-risk:3 failed its gates",
    summary="accuracy 0.478 < 0.8", subject="credit-risk:3",
)
FORMATS: dict[str, Any] = {
    "webhook": json.loads(webhook.payload(NOTIFICATION)),
    "teams": teams.message(NOTIFICATION),
    "slack": slack.message(NOTIFICATION),
    "eventgrid": [eventgrid.cloud_event(NOTIFICATION)],
}


def received(body: Any, status: int = 200, signed: bool | None = None) -> Received:
    return Received("/ops", {}, body, signed, status, 0.0)


@pytest.mark.parametrize("channel", FORMATS)
def test_each_channel_format_gives_kind_severity_and_title(channel: str) -> None:
    found = summary(FORMATS[channel])
    assert found is not None
    assert (found.channel, found.kind, found.severity, found.title) == (
        channel, "model.rejected", "error", "credit-risk:3 failed its gates")


def test_the_line_reads_kind_severity_title_and_the_signature_check() -> None:
    line = describe(received(FORMATS["webhook"], signed=True))
    assert line.split()[1:5] == ["webhook", "model.rejected", "error", "credit-risk:3"]
    assert line.endswith("credit-risk:3 failed its gates  [signature ok]")
    assert describe(received(FORMATS["webhook"], status=503)).endswith("(answered 503)")


def test_an_unknown_payload_still_gets_a_line() -> None:
    assert "unrecognised payload on /ops" in describe(received({"hello": "world"}))
    assert "unrecognised payload on /ops" in describe(received({"type": "message", "attachments": []}))
