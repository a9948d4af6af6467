"""The local host runs the queue triggers in a process of its own, as Azure runs them apart from the HTTP front
end (`devhost.split`): the intake answers in one process, the worker reacts in the other, both write one log,
and stopping the host, or killing it, leaves no process behind."""

from __future__ import annotations

import re
from pathlib import Path

from devhost.process import HostProcess
from devhost.waiting import wait_until
from tests.e2e.test_webhook import outcomes, post, registered_event


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in found.read_text().split()] if found.exists() else []


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (an orphan's reaper may be slow, or absent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def run_by(log: str, function: str) -> set[int]:
    """The processes whose log lines say they ran `function`."""
    return {int(pid) for pid in re.findall(rf" (\d+) devhost: Executing 'Functions\.{function}'", log)}


def started(settings: dict[str, str], folder: Path) -> tuple[HostProcess, int]:
    host = HostProcess(settings, folder / "keys.json", log_file=folder / "host.log").start()
    assert host.pid is not None
    (queue_process,) = wait_until(lambda: children(host.pid or 0), what="the host's queue process")
    return host, queue_process


def test_the_worker_reacts_in_the_queue_process_and_a_stopped_host_leaves_no_process(
    host_settings: dict[str, str], tmp_path: Path
) -> None:
    host, queue_process = started(host_settings, tmp_path)
    try:
        event = registered_event()
        assert post(host, [event]).status_code == 202
        wait_until(lambda: outcomes(host, event["id"], "react"), what="the worker's reaction")
        log = (tmp_path / "host.log").read_text()
        assert run_by(log, "aml_events") == {host.pid}, "intake runs in the process that serves HTTP"
        assert run_by(log, "aml_work") == {queue_process}, "the worker runs in the queue process, with its log"
    finally:
        host.stop()
    assert host.pid is not None and not running(host.pid)
    assert not running(queue_process)


def test_a_killed_host_takes_its_queue_process_with_it(host_settings: dict[str, str], tmp_path: Path) -> None:
    host, queue_process = started(host_settings, tmp_path)
    host.stop(kill=True)
    wait_until(lambda: not running(queue_process), timeout=10, what="the orphaned queue process to exit")
