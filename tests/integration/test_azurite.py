"""The Azurite every storage test runs on."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost import azurite as azurite_module
from devhost.azurite import Azurite, running_azurite
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


def test_an_azurite_that_cannot_start_fails_at_once_saying_why(tmp_path: Path) -> None:
    """It was waited for until the timeout (270 s under patience 3 in a fresh-clone run), with nothing said."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        began = time.monotonic()
        with pytest.raises(RuntimeError, match=r"Azurite exited with code \d+ before it listened.*EADDRINUSE"), \
                running_azurite(location=str(tmp_path), blob_port=taken.getsockname()[1]):
            pass
    assert time.monotonic() - began < 30, "it failed when Azurite exited, not at the timeout"


def test_ports_chosen_for_azurite_and_taken_before_it_binds_them_are_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another test's server bound a port chosen for Azurite before Azurite did: a fresh-clone run failed on it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        chosen = [taken.getsockname()[1]]
        real_free_port = azurite_module.free_port
        monkeypatch.setattr(azurite_module, "free_port", lambda: chosen.pop() if chosen else real_free_port())
        with running_azurite(location=str(tmp_path)) as azurite:
            assert taken.getsockname()[1] not in (azurite.blob_port, azurite.queue_port, azurite.table_port)
            BlobServiceClient.from_connection_string(azurite.connection_string).create_container("started")
