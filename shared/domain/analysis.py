"""Pure rollout decisions: traffic splits and the health verdict of one step.

One analysis is the window from the step's start (or its last failed analysis) to the tick that
judges it, in Azure Monitor's minutes: the absolute gates on its totals (hard limits), and, when
the plan compares, the canary against its champion minute by minute (`shared.domain.judge`).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from shared.domain.judge import Judgement, compare
from shared.domain.policy import HealthGates, RolloutPlan
from shared.domain.ports import DeploymentMetrics

Result = Literal["pass", "fail", "inconclusive"]


class Closeness(BaseModel):
    """How close the step is to rolling back, as data: which count, how far along, what decides it."""

    counter: Literal["failures", "inconclusive"]
    count: int
    limit: int
    rolls_back: bool = Field(description="whether reaching the limit rolls back (else the step holds)")
    needs_requests: int | None = None
    needs_minutes: int | None = None

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way: the text is stored too
    @property
    def text(self) -> str:
        """`inconclusive 3 of 10: rolls back after 10; needs about 40 more requests (about 4 minutes)`."""
        at_limit = self.count >= self.limit
        if self.rolls_back:
            then = "rolls back" if at_limit else f"rolls back after {self.limit}"
        else:
            then = "holds, ops told (the policy does not roll back for lack of evidence)" if at_limit \
                else f"holds after {self.limit}"
        line = f"{self.counter} {self.count} of {self.limit}: {then}"
        needs = [f"about {self.needs_requests} more requests" if self.needs_requests else "",
                 f"about {self.needs_minutes} more minutes" if self.needs_minutes else ""]
        wanted = [part for part in needs if part]
        if wanted:
            line += "; needs " + (f"{wanted[0]} ({wanted[1]})" if len(wanted) == 2 else wanted[0])
        return line


class Analysis(BaseModel):
    result: Result
    reasons: list[str]
    observed: dict[str, float | None]
    comparison: Judgement | None = None
    needs_requests: int | None = Field(None, description="about how many more canary requests could decide")
    needs_minutes: int | None = None
    closeness: Closeness | None = None

    def summary(self) -> Analysis:
        """The analysis without the per-minute series (kept in the rollout's history)."""
        if self.comparison is None:
            return self
        lines = [line.model_copy(update={"canary_series": [], "champion_series": []})
                 for line in self.comparison.metrics]
        return self.model_copy(update={"comparison": self.comparison.model_copy(update={"metrics": lines})})


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
                        observed=observed, needs_requests=gates.min_requests - metrics.requests)
    if failures:
        return Analysis(result="fail", reasons=failures, observed=observed)
    return Analysis(result="pass", reasons=[f"{metrics.requests} requests within every gate"], observed=observed)


def judge_step(metrics: DeploymentMetrics, plan: RolloutPlan, champion: DeploymentMetrics | None = None,
               champion_name: str = "", shares: tuple[float, float] = (0.0, 0.0)) -> Analysis:
    """The absolute gates (hard limits), then, when the plan compares and there is a champion, the
    canary against it: either failing fails; both must pass to pass; anything else is inconclusive
    (a marginal score, or not enough evidence yet, with what would decide it)."""
    if plan.compare is None or champion is None:
        return analyze(metrics, plan.gates)
    platform = platform_minutes(champion, plan.gates)
    absolute = analyze(without(metrics, platform), plan.gates)
    if platform:
        absolute.reasons.append(f"{len(platform)} minutes left out of the hard limits: {champion_name} broke them too")
    phases = len(plan.steps) - 1 + (1 if plan.mirror else 0)  # the last step is 100 %: no champion serves
    judged = compare(metrics, champion, plan.compare, champion_name=champion_name, shares=shares, phases=phases)
    observed = {**absolute.observed, "score": judged.score}
    rate = metrics.requests / len(metrics.minutes) if metrics.minutes else 0.0
    if absolute.result == "fail" or judged.verdict == "fail":
        failed = [*(absolute.reasons if absolute.result == "fail" else []),
                  *(judged.reasons if judged.verdict == "fail" else [])]
        return Analysis(result="fail", reasons=failed, observed=observed, comparison=judged)
    if absolute.result == "pass" and judged.verdict == "pass":
        reasons = [*absolute.reasons, f"as good as {champion_name}: score {judged.score:.0f}"]
        return Analysis(result="pass", reasons=reasons, observed=observed, comparison=judged)
    reasons = [*(absolute.reasons if absolute.result != "pass" else []),
               *(f"{judged.verdict}: {reason}" for reason in judged.reasons)]
    requests = max(absolute.needs_requests or 0, judged.needs_requests or 0) or None
    minutes = judged.needs_minutes
    if minutes is None and requests and rate:
        minutes = math.ceil(requests / rate)
    return Analysis(result="inconclusive", reasons=reasons, observed=observed, comparison=judged,
                    needs_requests=requests, needs_minutes=minutes)


def platform_minutes(champion: DeploymentMetrics, gates: HealthGates) -> set[datetime]:
    """The minutes the champion broke a hard limit in too: the platform's, not the canary's, to judge."""
    found = set()
    p95 = champion.series.get("RequestLatency_P95", [])
    p99 = champion.series.get("RequestLatency_P99", [])
    for index, minute in enumerate(champion.minutes):
        requests = champion.requests_per_minute[index] if index < len(champion.requests_per_minute) else 0
        errors = champion.errors_per_minute[index] if index < len(champion.errors_per_minute) else 0
        slow = [(values[index] if index < len(values) else None, limit)
                for values, limit in ((p95, gates.max_latency_p95_ms), (p99, gates.max_latency_p99_ms))]
        if any(value is not None and limit and value > limit for value, limit in slow) or (
                requests and errors / requests > gates.max_error_rate):
            found.add(minute)
    return found


def without(metrics: DeploymentMetrics, minutes: set[datetime]) -> DeploymentMetrics:
    """The deployment's window without `minutes`, its totals counted again from the minutes kept."""
    if not minutes:
        return metrics
    keep = [index for index, minute in enumerate(metrics.minutes) if minute not in minutes]

    def kept(values: list[float | None]) -> list[float | None]:
        return [values[index] for index in keep if index < len(values)]

    series = {name: kept(values) for name, values in metrics.series.items()}
    worst = {name: max((v for v in series.get(name, []) if v is not None), default=None)
             for name in ("RequestLatency_P95", "RequestLatency_P99")}
    requests = [metrics.requests_per_minute[index] for index in keep if index < len(metrics.requests_per_minute)]
    errors = [metrics.errors_per_minute[index] for index in keep if index < len(metrics.errors_per_minute)]
    return metrics.model_copy(update={
        "requests": round(sum(requests)), "errors": round(sum(errors)), "minutes": [metrics.minutes[i] for i in keep],
        "requests_per_minute": requests, "errors_per_minute": errors, "series": series,
        "latency_p95_ms": worst["RequestLatency_P95"], "latency_p99_ms": worst["RequestLatency_P99"],
    })


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
