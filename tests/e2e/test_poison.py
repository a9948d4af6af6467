"""A work item that keeps failing ends in the poison queue and is recorded, not lost."""

from __future__ import annotations

import json

from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from devhost.process import HostProcess
from tests.e2e.conftest import wait_for
from tests.e2e.test_webhook import store


def test_a_work_item_failing_five_times_is_dead_lettered_with_its_last_error(host: HostProcess) -> None:
    queue = QueueClient.from_connection_string(
        host.settings["AzureWebJobsStorage"], "aml-work", message_encode_policy=BinaryBase64EncodePolicy()
    )
    item = {"key": "poison-probe", "event": {"id": "evt-poison", "eventType": "not-an-aml-event"}}
    queue.send_message(json.dumps(item).encode())

    dead = wait_for(lambda: store(host).get("deadletter", "poison-probe"), timeout=60)

    assert json.loads(dead["message"]) == item, "the original message is kept for replay"
    assert "attempt 5" in dead["reason"] and "UnknownEventType" in dead["reason"]
    errors = [e for e in store(host).read_audit() if e.correlation_id == "evt-poison" and e.outcome == "error"]
    assert len(errors) == 5
    assert queue.peek_messages() == []
