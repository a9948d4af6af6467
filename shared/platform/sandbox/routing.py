"""Online endpoints at request time: route by traffic weight, mirror, score, measure.

This is the hot path. The endpoint record is re-read at most every `cache_seconds`,
ONNX sessions are cached per process, and metrics only touch memory.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any

from shared.platform.port import NotFound, PlatformError, Transient
from shared.platform.sandbox import endpoints, models, scoring
from shared.platform.sandbox.metrics import MetricsRecorder
from shared.platform.sandbox.store import Rejected, SandboxStore

Outputs = dict[str, list[Any]]


class Router:
    """Serves scoring requests of the sandbox's online endpoints."""

    def __init__(
        self, store: SandboxStore, recorder: MetricsRecorder, cache_seconds: float, rng: random.Random
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.cache_seconds = cache_seconds
        self.rng = rng
        self._endpoints: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def score(self, workspace: str, endpoint: str, rows: object, deployment: str | None = None) -> tuple[str, Outputs]:
        """(the deployment that answered, its outputs); see SandboxPlatform.score."""
        doc = self._endpoint(workspace, endpoint)
        live, mirror = endpoints.routes(doc, time.time())
        target = deployment or scoring.choose(live, self.rng)
        if target is None:
            raise Transient(f"endpoint {endpoint!r} has no deployment with live traffic")
        features = scoring.as_rows(rows)
        outputs = self._invoke(doc, target, features)
        if deployment is None:
            for name, percent in mirror.items():
                if percent and self.rng.random() * 100 < percent:
                    # A mirror's answer and failure are only measured, never seen by the caller.
                    with contextlib.suppress(PlatformError):
                        self._invoke(doc, name, features)
        return target, outputs

    def forget(self, workspace: str, endpoint: str) -> None:
        """Drop the cached endpoint record after this process changed it."""
        self._endpoints.pop((workspace, endpoint), None)

    def _invoke(self, doc: dict[str, Any], deployment: str, features: Any) -> Outputs:
        entry = doc["deployments"].get(deployment)
        if entry is None:
            raise NotFound(f"deployment {deployment!r} does not exist on endpoint {doc['name']!r}")
        state = endpoints.deployment_state(entry, time.time())
        if state != "Succeeded":
            raise Transient(f"deployment {deployment!r} is {state}")
        model = entry["model"]
        start, failed = time.perf_counter(), False
        try:
            if entry["error_rate"] and self.rng.random() < entry["error_rate"]:
                raise scoring.ScoringFailed(f"deployment {deployment!r} failed the request (injected fault)")
            session = scoring.SESSIONS.get(
                entry["sha256"],
                lambda: models.read_bytes(self.store, model["location"], model["name"], model["version"]),
            )
            return scoring.predict(session, features)
        except Rejected:
            raise  # the caller's mistake: counted as a request, not as an error of the deployment
        except scoring.ScoringFailed:
            failed = True
            raise
        except Exception as error:
            failed = True
            raise scoring.ScoringFailed(f"deployment {deployment!r} failed: {error}") from error
        finally:
            latency_ms = (time.perf_counter() - start) * 1000
            self.recorder.record(doc["workspace"], doc["name"], deployment, latency_ms, failed)

    def _endpoint(self, workspace: str, endpoint: str) -> dict[str, Any]:
        cached = self._endpoints.get((workspace, endpoint))
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        doc = endpoints.load(self.store, workspace, endpoint)
        self._endpoints[(workspace, endpoint)] = (time.monotonic(), doc)
        return doc
