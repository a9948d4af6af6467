"""The Azurite every storage test runs on."""

from __future__ import annotations

import contextlib
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite
from devhost.stack import clear_work_queues


def test_azurite_runs_without_usage_telemetry(azurite: Azurite) -> None:
    # Azurite 3.35+ exports telemetry by default. Without internet access, the exporter cost
    # about a core-second per scoring benchmark job and kept Azurite busy while it was idle.
    assert azurite.process is not None
    arguments = Path(f"/proc/{azurite.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--disableTelemetry" in arguments


def test_a_stack_on_a_shared_azurite_starts_with_empty_work_queues(azurite: Azurite) -> None:
    """An event a stopped stack acknowledged and left queued was handled by the next stack of the same test
    worker, against that stack's state (a fresh-clone run: a run event of another test's job, audited ignored)."""
    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    clear_work_queues(azurite)  # the queues may not exist yet
    for name in ("aml-work", "aml-work-poison"):
        with contextlib.suppress(ResourceExistsError):
            queues.create_queue(name)
        queues.get_queue_client(name).send_message("left by the stack before")
        queues.get_queue_client(name).receive_message(visibility_timeout=60)  # in a stopped worker's hands
        queues.get_queue_client(name).send_message("and one not yet received")

    clear_work_queues(azurite)

    for name in ("aml-work", "aml-work-poison"):
        assert queues.get_queue_client(name).get_queue_properties().approximate_message_count == 0
