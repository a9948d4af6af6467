"""Pure rollout decisions: traffic splits and the health verdict of one step."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.domain.policy import HealthGates
from shared.domain.ports import DeploymentMetrics

Result = Literal["pass", "fail", "inconclusive"]


class Analysis(BaseModel):
    result: Result
    reasons: list[str]
    observed: dict[str, float | None]


def analyze(metrics: DeploymentMetrics, gates: HealthGates) -> Analysis:
    """Judge a deployment's live metrics; too few requests is inconclusive, never a pass."""
    observed = {
        "requests": float(metrics.requests), "errors": float(metrics.errors), "error_rate": metrics.error_rate,
        "latency_p95_ms": metrics.latency_p95_ms, "latency_p99_ms": metrics.latency_p99_ms,
    }
    failures = []
    if metrics.error_rate > gates.max_error_rate:
        failures.append(f"error rate {metrics.error_rate:.1%} > {gates.max_error_rate:.1%}")
    if gates.max_latency_p95_ms and (metrics.latency_p95_ms or 0) > gates.max_latency_p95_ms:
        failures.append(f"latency p95 {metrics.latency_p95_ms:.0f} ms > {gates.max_latency_p95_ms:.0f} ms")
    if gates.max_latency_p99_ms and (metrics.latency_p99_ms or 0) > gates.max_latency_p99_ms:
        failures.append(f"latency p99 {metrics.latency_p99_ms:.0f} ms > {gates.max_latency_p99_ms:.0f} ms")
    if metrics.requests < gates.min_requests:
        # Errors already beyond what the full sample could absorb fail now; anything else waits.
        if metrics.errors > gates.max_error_rate * gates.min_requests:
            return Analysis(result="fail", reasons=[f"{metrics.errors} errors in {metrics.requests} requests"],
                            observed=observed)
        return Analysis(result="inconclusive",
                        reasons=[f"only {metrics.requests} requests, {gates.min_requests} needed to judge"],
                        observed=observed)
    if failures:
        return Analysis(result="fail", reasons=failures, observed=observed)
    return Analysis(result="pass", reasons=[f"{metrics.requests} requests within every gate"], observed=observed)


def split(baseline: dict[str, int], new: str, percent: int) -> dict[str, int]:
    """Give `new` `percent` of the traffic and share the rest among the baseline as it was."""
    others = {name: share for name, share in baseline.items() if name != new and share > 0}
    if not others or percent >= 100:
        return {**{name: 0 for name in baseline if name != new}, new: 100}
    remaining, total = 100 - percent, sum(others.values())
    shares = {name: remaining * share // total for name, share in others.items()}
    largest = max(others, key=lambda name: others[name])
    shares[largest] += remaining - sum(shares.values())
    return {**{name: 0 for name in baseline}, **shares, new: percent}
