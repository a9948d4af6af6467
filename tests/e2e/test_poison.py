"""A work item that keeps failing ends in the poison queue and is recorded, not lost."""

from __future__ import annotations

import json
from pathlib import Path

from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from devhost.azurite import Azurite
from devhost.process import HostProcess
from devhost.stack import Stack, local_stack
from devhost.waiting import wait_until
from localaml import samples
from shared.domain.records import AuditEntry
from tests.e2e.conftest import write_policy
from tests.e2e.test_webhook import store


def test_a_work_item_failing_five_times_is_dead_lettered_with_its_last_error(host: HostProcess) -> None:
    queue = QueueClient.from_connection_string(
        host.settings["AzureWebJobsStorage"], "aml-work", message_encode_policy=BinaryBase64EncodePolicy()
    )
    item = {"key": "poison-probe", "event": {"id": "evt-poison", "eventType": "not-an-aml-event"}}
    queue.send_message(json.dumps(item).encode())

    dead = wait_until(lambda: store(host).get("deadletter", "poison-probe"), timeout=60)

    assert json.loads(dead["message"]) == item, "the original message is kept for replay"
    assert "attempt 5" in dead["reason"] and "UnknownEventType" in dead["reason"]
    errors = [e for e in store(host).read_audit() if e.correlation_id == "evt-poison" and e.outcome == "error"]
    assert len(errors) == 5
    assert queue.peek_messages() == []


def test_a_work_item_that_meets_a_held_lease_waits_and_succeeds_without_a_dead_letter(
    azurite: Azurite, tmp_path: Path
) -> None:
    """Another reconciler holds the version's lease for a while: the worker's items are delivered
    again later (not 5 times in a row, then poisoned), and the version goes on to serve."""
    policy = write_policy(tmp_path)
    no_resync = {"MLOPS_POLICY_PATH": str(policy), "MLOPS_RESYNC_SCHEDULE": "0 0 0 1 1 *"}
    with local_stack(tmp_path, no_resync, azurite=azurite) as stack:
        with stack.state.lease("lifecycle", "credit-risk:1", seconds=60):
            stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=1), {})
            # Met twice while held: delivered again later, where the queue's own retries (visibility timeout
            # 0.5 s here) would have spent its 5 dequeues and poisoned it.
            wait_until(lambda: len(deferrals(stack)) >= 2, timeout=30, what="two deferrals by the held lease")

        wait_until(lambda: (stack.state.get("lifecycle", "credit-risk:1") or {}).get("stage") == "live", timeout=90)
        entries = stack.state.read_audit()
        assert stack.state.list("deadletter") == []
        assert not [e for e in entries if e.outcome in ("error", "poisoned")], "no false alarm"
        assert len(deferrals(stack)) >= 2
        kinds = {n.body["data"]["kind"] for n in stack.receiver.received if n.path == "/ops"}
        assert not [kind for kind in kinds if "fail" in kind or "error" in kind], kinds


def deferrals(stack: Stack) -> list[AuditEntry]:
    """The audit entries of work items put back on the queue to wait (contention)."""
    return [e for e in stack.state.read_audit() if e.action == "react" and e.outcome == "deferred"]
