"""Live metrics of online deployments, in one-second buckets any process can read.

The scoring hot path only adds to an in-memory bucket; a background thread appends
the finished buckets to one append blob per deployment and minute (at least once a
second), so reading a window downloads one small blob per minute.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

from shared.platform.port import DeploymentMetrics
from shared.platform.sandbox.store import SandboxStore
from shared.storage.state import blob_path

log = logging.getLogger(__name__)
Bucket = tuple[str, str, str, int]


def _folder(workspace: str, endpoint: str, deployment: str) -> str:
    return blob_path("metrics", workspace, endpoint, deployment) + "/"


def _minute(second: int) -> str:
    return time.strftime("%Y%m%d%H%M", time.gmtime(second))


class MetricsRecorder:
    """Counts requests, errors and latencies per deployment and second; flushes in the background."""

    def __init__(self, store: SandboxStore, flush_seconds: float = 0.5) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._pending: dict[Bucket, list] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, workspace: str, endpoint: str, deployment: str, latency_ms: float, error: bool) -> None:
        bucket = (workspace, endpoint, deployment, int(time.time()))
        with self._lock:
            counts = self._pending.setdefault(bucket, [0, 0, []])
            counts[0] += 1
            counts[1] += int(error)
            counts[2].append(round(latency_ms, 3))
            if self._thread is None:
                self._start()

    def flush(self) -> None:
        """Append every pending bucket to storage (a failed write is logged and dropped)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        lines: dict[str, list[str]] = defaultdict(list)
        for (workspace, endpoint, deployment, second), (requests, errors, latencies) in sorted(pending.items()):
            name = _folder(workspace, endpoint, deployment) + _minute(second) + ".jsonl"
            lines[name].append(json.dumps({"t": second, "n": requests, "e": errors, "ms": latencies}))
        for name, entries in lines.items():
            try:
                self.store.append_lines(name, ("\n".join(entries) + "\n").encode())
            except Exception:
                log.exception("could not write sandbox metrics to %s", name)

    def close(self) -> None:
        self._stop.set()
        self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sandbox-metrics", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()


def read(store: SandboxStore, workspace: str, endpoint: str, deployment: str, since: datetime) -> DeploymentMetrics:
    """Requests, errors and latency percentiles of a deployment from `since` until now."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    first = math.floor(since.timestamp())
    folder = _folder(workspace, endpoint, deployment)
    requests = errors = 0
    latencies: list[float] = []
    for name in store.list_names(folder):
        if name.removeprefix(folder).removesuffix(".jsonl") < _minute(first):
            continue
        for line in (store.read_blob(name) or b"").splitlines():
            bucket = json.loads(line)
            if bucket["t"] >= first:
                requests += bucket["n"]
                errors += bucket["e"]
                latencies.extend(bucket["ms"])
    latencies.sort()
    return DeploymentMetrics(
        requests=requests,
        errors=errors,
        latency_p95_ms=percentile(latencies, 0.95),
        latency_p99_ms=percentile(latencies, 0.99),
        window_start=since,
    )


def percentile(ordered: list[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values; None for no values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
