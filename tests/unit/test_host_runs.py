"""tests.e2e.conftest.HostRuns: the function runs an e2e test waits for, read from the local host's log."""

from __future__ import annotations

from pathlib import Path

from devhost.process import HostProcess
from tests.e2e.conftest import HostRuns

LINE = "2026-12-01 09:00:00,000 INFO devhost.host: {phase} 'Functions.{name}'{outcome}\n"


def log(path: Path, phase: str, name: str, outcome: str = "") -> None:
    with path.open("a") as file:
        file.write(LINE.format(phase=phase, name=name, outcome=outcome))


def test_counts_only_runs_that_started_and_ended_after_it_was_made(tmp_path: Path) -> None:
    path = tmp_path / "host.log"
    log(path, "Executing", "rollout_tick")
    runs = HostRuns(HostProcess({}, tmp_path / "keys.json", log_file=path))
    log(path, "Executed", "rollout_tick", " (Succeeded)")  # began before: it may have read the old state
    log(path, "Executing", "resync")
    assert runs.runs_of("rollout_tick") == 0

    log(path, "Executing", "rollout_tick")
    assert runs.runs_of("rollout_tick") == 0, "still running"
    log(path, "Executed", "rollout_tick", " (Succeeded)")
    log(path, "Executing", "rollout_tick")
    log(path, "Executed", "rollout_tick", " (Failed)")
    log(path, "Executing", "rollout_tick_other")
    log(path, "Executed", "rollout_tick_other", " (Succeeded)")

    assert runs.runs_of("rollout_tick") == 2, "a failed run is a run too; a function with a longer name is not it"
    assert runs.runs_of("resync") == 0
