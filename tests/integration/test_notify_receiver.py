"""The local receiver as the demo runs it: a process that prints what it receives."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from devhost.azurite import free_port
from devhost.receiver import Receiver
from shared.adapters.notify import RetryPolicy
from shared.adapters.notify.eventgrid import EventGridChannel
from shared.adapters.notify.slack import SlackChannel
from shared.adapters.notify.teams import TeamsChannel
from shared.adapters.notify.webhook import WebhookChannel
from shared.domain.notification import Notification
from tests.integration.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=3, total_seconds=10, first_delay=0.05, max_delay=0.2)


def promoted() -> Notification:
    return Notification(
        id="model.promoted:credit-risk:4",
        kind="model.promoted",
        title="credit-risk 4 promoted to prod",
        subject="credit-risk:4",
    )


def test_received_requests_are_served_as_json() -> None:
    with Receiver(secret=SECRET) as receiver:
        WebhookChannel(receiver.url + "/hooks", SECRET, FAST).send(promoted())
        with urllib.request.urlopen(receiver.url + "/received", timeout=5) as response:
            served = json.load(response)

    [got] = served
    assert (got["path"], got["status"], got["signature_valid"]) == ("/hooks", 200, True)
    assert got["body"]["data"]["title"] == "credit-risk 4 promoted to prod"


def test_the_receiver_process_prints_one_line_per_notification() -> None:
    from azure.core.credentials import AzureKeyCredential

    port = free_port()
    command = [sys.executable, "-m", "devhost.receiver", "--port", str(port), "--secret", SECRET]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"receiving notifications on http://127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}"
        TeamsChannel(url + "/teams", FAST).send(promoted())
        SlackChannel(url + "/slack", FAST).send(promoted())
        WebhookChannel(url + "/webhook", SECRET, FAST).send(promoted())
        EventGridChannel(url + "/api/events", AzureKeyCredential("k"), policy=FAST).send(promoted())
        lines = [process.stdout.readline().split(maxsplit=1)[1] for _ in range(4)]
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert [" ".join(line.split()) for line in lines] == [
        "teams model.promoted info credit-risk 4 promoted to prod",
        "slack model.promoted ? credit-risk 4 promoted to prod",  # Slack shows severity as the summary's icon
        "webhook model.promoted info credit-risk 4 promoted to prod [signature ok]",
        "eventgrid model.promoted info credit-risk 4 promoted to prod",
    ]
