"""The Azurite every storage test runs on."""

from __future__ import annotations

from pathlib import Path

from devhost.azurite import Azurite


def test_azurite_runs_without_usage_telemetry(azurite: Azurite) -> None:
    # Azurite 3.35+ exports telemetry by default. Without internet access, the exporter cost
    # about a core-second per scoring benchmark job and kept Azurite busy while it was idle.
    assert azurite.process is not None
    arguments = Path(f"/proc/{azurite.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--disableTelemetry" in arguments
