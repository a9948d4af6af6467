"""Faults end to end: versions registered in a burst while a fifth of the app's Azure ML calls fail and Azure ML's
events arrive duplicated and out of order. No version is lost, none is tested twice, no decision told twice.

The local stack's Azure ML service runs in this process: a fifth of the requests the app makes to it (its
own identity, the management and registry APIs) are answered 429, 503 or 504 as Azure answers them, and
its events go to the receiver, from which they are delivered to the host's Event Grid webhook twice each,
shuffled. The resync timer finds what an event's delivery failed to start.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from devhost.azurite import Azurite
from devhost.localaml import register_model_version
from devhost.stack import Stack, local_stack
from devhost.waiting import wait_until
from localaml import samples
from localaml.errors import Reply, arm_error
from localaml.service import LocalAzureML, identity
from localentra.directory import APP_CLIENT_ID
from tests.e2e.conftest import write_policy

MODELS = ("credit-risk", "credit-risk-eu")
VERSIONS = 9  # of each model: 18 in all
FAULT_RATE = 0.2
FAULTS: tuple[tuple[int, dict[str, str], str], ...] = (
    (429, {"Retry-After": "1"}, "TooManyRequests"), (503, {}, "ServiceUnavailable"), (504, {}, "GatewayTimeout"),
)
# The management API, the registry's front end and its discovery: Azure ML's own APIs, not scoring or MLflow.
AZURE_ML_API = re.compile(r"^/(subscriptions|mferp|registrymanagement)/")
FINAL = {"failed", "rejected", "live", "superseded", "retired", "rolled_back"}


@contextmanager
def failing(service: LocalAzureML, rate: float, seed: int = 7) -> Iterator[Counter[int]]:
    """A fraction `rate` of the app's Azure ML calls answered 429 / 503 / 504; the statuses given, counted."""
    chance = random.Random(seed)
    given: Counter[int] = Counter()
    lock = threading.Lock()
    handle = service.handle

    def faulty(method: str, raw_path: str, body: bytes, headers: dict[str, str]) -> Reply:
        if AZURE_ML_API.match(raw_path) and identity(headers) == (APP_CLIENT_ID, "Application"):
            with lock:
                roll, (status, extra, code) = chance.random(), chance.choice(FAULTS)
                if roll < rate:
                    given[status] += 1
                    return arm_error(status, code, "injected fault", extra)
        return handle(method, raw_path, body, headers)

    service.handle = faulty  # type: ignore[method-assign]
    try:
        yield given
    finally:
        service.handle = handle  # type: ignore[method-assign]


class Redelivery:
    """Azure ML's events, taken from the receiver and delivered to the host's webhook twice each, shuffled.

    A 5xx is delivered again, as Event Grid does; anything but a 202 after that fails the test when the block
    ends (it used to die in its thread, unseen: a 400 for the empty array a canceled job once sent)."""

    def __init__(self, stack: Stack, seed: int = 11) -> None:
        self.stack = stack
        self.order = random.Random(seed)
        self.taken = 0
        self.delivered = 0
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redelivery", daemon=True)

    def __enter__(self) -> Redelivery:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.failure is None, self.failure

    def _run(self) -> None:
        while self.failure is None and not self._stop.wait(0.5):
            events = [r.body for r in self.stack.receiver.received if r.path.startswith("/aml-events")]
            batch, self.taken = events[self.taken:], len(events)
            deliveries = batch * 2
            self.order.shuffle(deliveries)
            for body in deliveries:
                if not self._deliver(body):
                    return
                self.delivered += 1

    def _deliver(self, body: list[Any]) -> bool:
        for _ in range(2):
            response = requests.post(self.stack.host.eventgrid_url, json=body, timeout=30,
                                     headers={"aeg-event-type": "Notification"})
            if response.status_code < 500:
                break
        if response.status_code != 202:
            self.failure = f"a redelivery got {response.status_code}: {response.text[:300]}"
        return self.failure is None


def stages(stack: Stack) -> dict[str, str | None]:
    found = {}
    for model in MODELS:
        for version in range(1, VERSIONS + 1):
            record = stack.state.get("lifecycle", f"{model}:{version}")
            found[f"{model}:{version}"] = record["stage"] if record else None
    return found


def all_final(stack: Stack) -> dict[str, str | None] | None:
    now = stages(stack)
    return now if all(stage in FINAL for stage in now.values()) else None


def test_no_version_is_lost_or_doubled_under_faults_duplicates_and_reordering(
    azurite: Azurite, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, bake=1, min_requests=10, inconclusive_limit=1, retire=1)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite, capture_events=True) as stack:
        alice = stack.aml.client_as("dev", "alice")
        good = samples.good_model(seed=3)
        bad = samples.bad_model(seed=2)
        with failing(stack.aml.service, FAULT_RATE) as given, Redelivery(stack) as redelivery:
            for version in range(1, VERSIONS + 1):
                for model in MODELS:
                    register_model_version(alice, "dev", model, bad if version % 3 == 0 else good, {})
            final = wait_until(lambda: all_final(stack), timeout=240, what="every version in a final stage")

        assert final is not None
        # One run: 317 faults given (504: 119, 503: 101, 429: 97), 72 deliveries of 36 events, and 7 superseded,
        # 6 failed, 4 rolled back, 1 live; about 2.5 minutes in all.
        assert sum(given.values()) > 0 and redelivery.delivered >= 2 * len(final)
        tests: Counter[str] = Counter()
        for resource in stack.aml.service.resources.values():
            tags: dict[str, Any] = resource.get("properties", {}).get("tags") or {}
            if resource["type"].lower().endswith("/jobs") and tags.get("mlops.purpose") == "test":
                tests[f"{tags['mlops.model']}:{tags['mlops.version']}"] += 1
        assert tests == Counter({key: 1 for key in final}), "one test job per version"
        channels = {urlsplit(r.path).path for r in stack.receiver.accepted()} - {"/aml-events"}
        assert channels, "decisions were told"
        for path in channels:
            told = Counter(r.body["data"]["id"] for r in stack.receiver.accepted(path))
            assert max(told.values()) == 1, f"one notification per decision on {path}: {told}"
