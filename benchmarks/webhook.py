"""Events per second through the local host's Event Grid webhook, against its health route, on a real Azurite.

For each app measured (the current tree, and with `--baseline REF` that revision too, in the same run on
the same Azurite), a local host is started and:
- `GET /api/ops/health` (one storage round trip) is called `--events` times from `--clients` concurrent
  clients, half before the webhook's measure and half after it: the rate and answer latency of the host
  itself with one round trip;
- as many unique DatasetDriftDetected events (for a monitor no rule watches, so that each reaction is
  cheap and the figure is the intake's) are posted, one event per request as Event Grid does by default:
  intake's rate (answered 202), its answer latency, and end to end (until every reaction is audited);
- one array of `--array` events is posted in one request, as Event Grid may batch them: its answer time
  must stay well under Event Grid's 30 s delivery timeout;
- `benchmarks/intake_cost.py` counts what one event costs in storage round trips and CPU;
- when the host runs its queue triggers in a process of their own, the webhook once more with that process
  paused (SIGSTOP), as Azure's front end answers while the worker runs on other instances: intake's own rate,
  beside the figures measured with the worker running on the same cores;
- on Linux, the CPU each process spent (from /proc) per health call and per event end to end: the host's
  process(es), Azurite and this benchmark (its clients and polls), which share the machine's cores.

    python benchmarks/webhook.py [--events 600] [--clients 8] [--array 1000] [--baseline 9a69ffd]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import Azurite, running_azurite
from devhost.process import HostProcess
from devhost.waiting import wait_until
from shared.adapters.storage.clients import blob_service
from shared.adapters.storage.state import BlobStateStore
from shared.settings import Settings
from tools.send_events import generate

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Rate:
    """Requests answered per second by concurrent clients, and the answers' latencies (seconds, sorted)."""

    per_second: float
    latencies: list[float]

    def merged(self, other: Rate) -> Rate:
        """Both measures as one: calls over the time both took, all latencies."""
        calls = len(self.latencies) + len(other.latencies)
        seconds = len(self.latencies) / self.per_second + len(other.latencies) / other.per_second
        return Rate(calls / seconds, sorted(self.latencies + other.latencies))

    def percentile(self, p: float) -> float:
        return self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * p))]

    def line(self, what: str) -> str:
        return (f"{what:<34} {self.per_second:7.1f}/s   p50 {statistics.median(self.latencies) * 1000:5.0f} ms   "
                f"p95 {self.percentile(0.95) * 1000:5.0f} ms   p99 {self.percentile(0.99) * 1000:5.0f} ms")


@dataclass
class Figures:
    health: Rate
    webhook: Rate
    end_to_end: float
    array_seconds: float
    cost: dict[str, dict[str, float]]
    cpu: dict[str, dict[str, float]]
    """CPU ms by process, per health call and per event end to end (empty without /proc)."""
    intake_alone: Rate | None
    """The webhook with the queue process paused; None for a host of one process."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has spent (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU spent by named processes between `start` and `stop`, added over several spans."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes if Path("/proc/self/stat").exists() else {}
        self.spent = dict.fromkeys(self.processes, 0.0)
        self._at: dict[str, float] = {}

    def start(self) -> None:
        self._at = {name: cpu_seconds(pid) for name, pid in self.processes.items()}

    def stop(self) -> None:
        for name, pid in self.processes.items():
            self.spent[name] += cpu_seconds(pid) - self._at[name]

    def per(self, count: int) -> dict[str, float]:
        """Milliseconds per one of `count` requests or events, by process."""
        return {name: round(seconds * 1000 / count, 2) for name, seconds in self.spent.items()}


def host_processes(host: HostProcess, azurite: Azurite) -> dict[str, int]:
    """The processes that share the cores while the host is measured: the host's own (one, or two when it runs
    the queue triggers apart), Azurite, and this benchmark."""
    assert host.pid is not None
    found = {"host": host.pid}
    children = Path(f"/proc/{host.pid}/task/{host.pid}/children")
    for pid in (children.read_text().split() if children.exists() else []):
        found["queue process"] = int(pid)
    if azurite.process is not None:
        found["azurite"] = azurite.process.pid
    return {**found, "benchmark": os.getpid()}


def concurrently(calls: list[Callable[[], None]], clients: int) -> Rate:
    def timed(call: Callable[[], None]) -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(timed, calls))
    return Rate(len(calls) / (time.perf_counter() - started), latencies)


def drift_events(count: int) -> list[dict]:
    events = [generate("drift", "dev", "bench-model", "1", 0.9) for _ in range(count)]
    for event in events:
        event["data"]["DataDriftName"] = "unwatched-monitor"
    return events


def measure(root: Path, azurite: Azurite, args: argparse.Namespace, workdir: Path) -> Figures:
    values = {
        "AzureWebJobsStorage": azurite.connection_string,
        "MLOPS_STATE_CONTAINER": f"bench-{uuid.uuid4().hex[:8]}",
        "MLOPS_RESYNC_SCHEDULE": "0 0 0 1 1 *",
        "MLOPS_ROLLOUT_SCHEDULE": "0 0 0 1 1 *",
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.2",
    }
    state = BlobStateStore(blob_service(Settings.from_environ(values)), values["MLOPS_STATE_CONTAINER"])
    keys = workdir / f"keys-{uuid.uuid4().hex[:8]}.json"
    # Every app measured here uses the one work queue on the one Azurite: each starts on an empty queue and
    # leaves it empty, so that no app's worker spends its measure on another's events.
    queue = QueueClient.from_connection_string(azurite.connection_string, "aml-work")
    with contextlib.suppress(ResourceNotFoundError):
        queue.clear_messages()

    def drained() -> bool:
        return queue.get_queue_properties().approximate_message_count == 0

    with HostProcess(values, keys, log_file=workdir / "host.log", root=root) as host:
        session = requests.Session()
        health_url = f"{host.url}/api/ops/health?code={host.keys.function}"

        def health() -> None:
            response = session.get(health_url, timeout=30)
            assert response.status_code == 200, response.text

        def post(events: list[dict], timeout: float = 30) -> None:
            response = session.post(host.eventgrid_url, json=events, headers={"aeg-event-type": "Notification"},
                                    timeout=timeout)
            assert response.status_code == 202, response.text

        health()
        post(drift_events(1))  # warm-up: the first call builds the clients and the queue
        wait_until(drained, timeout=60, interval=0.1, what="the warm-up event's work")
        health_cpu, webhook_cpu = CpuMeter(host_processes(host, azurite)), CpuMeter(host_processes(host, azurite))
        # Half the health calls before the webhook's, half after its work is done: the two bracket it in time, so
        # that a change in the machine's load (other processes) weighs on both figures alike.
        health_cpu.start()
        health_before = concurrently([health] * (args.events // 2), args.clients)
        health_cpu.stop()
        events = drift_events(args.events)
        webhook_cpu.start()
        started = time.perf_counter()
        webhook_rate = concurrently([functools.partial(post, [event]) for event in events], args.clients)
        # The queue's message count is one cheap call; reading the audit trail (thousands of lines) every
        # 0.2 s would take CPU from the host being measured. Once every message is deleted, the audit says.
        wait_until(drained, timeout=600, interval=0.1, what="the work queue to drain")
        ids = {event["id"] for event in events}
        wait_until(lambda: ids <= {e.correlation_id for e in state.read_audit() if e.action == "react"},
                   timeout=600, interval=0.5, what=f"the reactions to all {len(ids)} events in the audit")
        end_to_end = args.events / (time.perf_counter() - started)
        webhook_cpu.stop()
        health_cpu.start()
        health_rate = health_before.merged(concurrently([health] * (args.events - args.events // 2), args.clients))
        health_cpu.stop()
        intake_alone = None
        if "queue process" in webhook_cpu.processes:
            paused = webhook_cpu.processes["queue process"]
            os.kill(paused, signal.SIGSTOP)
            try:
                intake_alone = concurrently([functools.partial(post, [event]) for event in drift_events(args.events)],
                                            args.clients)
            finally:
                os.kill(paused, signal.SIGCONT)
            wait_until(drained, timeout=600, interval=0.5, what="the paused measure's work to drain")
        array = drift_events(args.array)
        started = time.perf_counter()
        post(array, timeout=300)
        array_seconds = time.perf_counter() - started
        wait_until(drained, timeout=600, interval=0.5, what="the array's work to drain")
    cost = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "intake_cost.py"), "--root", str(root), "--connection",
         azurite.connection_string, "--events", str(args.cost_events)],
        check=True, capture_output=True, text=True, cwd=root,
    )
    cpu = {"health call": health_cpu.per(args.events), "event end to end": webhook_cpu.per(args.events)}
    return Figures(health_rate, webhook_rate, end_to_end, array_seconds, json.loads(cost.stdout.splitlines()[-1]),
                   cpu, intake_alone)


def checkout(ref: str, workdir: Path) -> Path:
    """The tree of `ref`, extracted from git (no worktree), to run its app and host."""
    target = workdir / f"baseline-{ref}"
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, check=True, capture_output=True)
    target.mkdir()
    archive_file = workdir / "baseline.tar"
    archive_file.write_bytes(archive.stdout)
    with tarfile.open(archive_file) as tar:
        tar.extractall(target, filter="data")
    return target


def report(label: str, figures: Figures, events: int, array: int) -> None:
    health, webhook = figures.health, figures.webhook
    print(f"\n== {label}")
    print(health.line("GET /api/ops/health"))
    print(webhook.line("webhook (answered 202)"))
    print(f"{'end to end (reaction audited)':<34} {figures.end_to_end:7.1f}/s")
    print(f"{f'array of {array} events answered in':<34} {figures.array_seconds:7.1f} s")
    print(f"webhook / health: rate {webhook.per_second / health.per_second:.2f}x, "
          f"p99 {webhook.percentile(0.99) / health.percentile(0.99):.2f}x; "
          f"end to end / health rate {figures.end_to_end / health.per_second:.2f}x")
    if figures.intake_alone is not None:
        alone = figures.intake_alone
        print(alone.line("webhook, queue process paused"))
        print(f"paused / health: rate {alone.per_second / health.per_second:.2f}x, "
              f"p99 {alone.percentile(0.99) / health.percentile(0.99):.2f}x")
    for stage, cost in figures.cost.items():
        print(f"one event, {stage:<7} " + ", ".join(f"{name} {value:g}" for name, value in cost.items()))
    for what, spent in figures.cpu.items():
        print(f"CPU ms per {what}: " + ", ".join(f"{name} {value:g}" for name, value in spent.items())
              + f"; all {sum(spent.values()):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--array", type=int, default=1000, help="events in the one batched delivery")
    parser.add_argument("--cost-events", type=int, default=200, help="events for the round trip and CPU count")
    parser.add_argument("--baseline", help="a git revision measured too, before the current tree, in the same run")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    roots = ([(f"baseline {args.baseline}", checkout(args.baseline, workdir))] if args.baseline else []) + [
        ("current tree", ROOT)]
    print(f"events: {args.events} per measure, concurrent clients: {args.clients}")
    with running_azurite() as azurite:
        for label, root in roots:
            report(label, measure(root, azurite, args, workdir), args.events, args.array)


if __name__ == "__main__":
    main()
