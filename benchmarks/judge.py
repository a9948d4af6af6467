"""Today's absolute judge against the comparative, sequential one, on simulated rollouts.

    python benchmarks/judge.py [--rollouts 1000] [--seed 1] [--window 5]

Each rollout is judged through the app's own functions (`shared.domain.analysis.analyze` for the
absolute gates alone, `judge_step` for the gates and the comparison with the champion) on
per-minute series like Azure Monitor's (PT1M) for the canary and its champion over the same minutes:

- traffic: 600 requests a minute on the endpoint (low traffic: 3), split 10 % / 90 %, then 50 / 50;
- latency: each request log-normal (median 30 ms, sigma 0.5: p95 68 ms); a minute's p95 of n requests
  varies by about 10 % at n = 100 (the sample quantile's spread, sqrt(p (1 - p) / n) / density), and
  by 3 % per deployment for its own node; the platform moves both deployments' minutes together
  (5 %), and in the spike scenario multiplies them by 5 for 4 minutes of the first window;
- errors: 0.2 % of requests (binomial per minute), +1 % or +5 % for the canary in those scenarios.

One analysis is `--window` minutes (5: the step's bake time); each looks at every minute since the
step began. A step allows 10 analyses (today's `inconclusive_limit`); after them today's judge
rolls back, the new one holds (`on_no_evidence: hold`). The 10 % and 50 % steps are simulated; at
100 % the champion serves nothing, so both judges are the absolute gates there.

Printed: per scenario and judge, the share of rollouts rolled back, promoted past both steps and
still held, and the analyses (of the first step) a rollback took; the goals under the table.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.domain.analysis import analyze, judge_step
from shared.domain.policy import Comparison, HealthGates, RolloutPlan
from shared.domain.ports import DeploymentMetrics

START = datetime(2026, 12, 1, tzinfo=UTC)
MEDIAN_MS, SIGMA = 30.0, 0.5
P95_MS = MEDIAN_MS * math.exp(SIGMA * 1.6449)
P95_SPREAD_AT_100 = math.sqrt(0.95 * 0.05 / 100) / 0.1031 * SIGMA  # the sample p95's log spread at n = 100
BASE_ERRORS = 0.002
ANALYSES = 10
STEPS = (10, 50)
GATES = HealthGates(max_error_rate=0.05, max_latency_p95_ms=250, min_requests=20)
PLAN = RolloutPlan(workspace="prod", endpoint="bench", steps=[10, 50, 100], gates=GATES, compare=Comparison(),
                   inconclusive_limit=ANALYSES)


@dataclass(frozen=True)
class Scenario:
    name: str
    latency: float = 1.0  # the canary's latency, times the champion's
    errors: float = 0.0  # added to the canary's error rate
    traffic: float = 600.0  # requests a minute on the endpoint
    spike: bool = False
    good: bool = True  # a canary that should be promoted


SCENARIOS = (
    Scenario("A/A (noise only)"),
    Scenario("shared platform spike", spike=True),
    Scenario("latency 1.2x", latency=1.2, good=False),
    Scenario("latency 1.5x", latency=1.5, good=False),
    Scenario("latency 2x", latency=2.0, good=False),
    Scenario("errors +1 %", errors=0.01, good=False),
    Scenario("errors +5 %", errors=0.05, good=False),
    Scenario("low traffic (3/min)", traffic=3.0),
)


def series(rng: np.random.Generator, scenario: Scenario, percent: int, minutes: int,
           ) -> tuple[DeploymentMetrics, DeploymentMetrics]:
    """The canary's and the champion's minutes of one step."""
    shared = rng.normal(0, 0.05, minutes)
    if scenario.spike:
        begin = int(rng.integers(0, max(1, minutes // ANALYSES)))
        shared[begin:begin + 4] += math.log(5)
    made = []
    for share, slower, extra in ((percent / 100, scenario.latency, scenario.errors), (1 - percent / 100, 1.0, 0.0)):
        requests = rng.poisson(scenario.traffic * share, minutes).astype(float)
        errors = rng.binomial(requests.astype(int), min(1.0, BASE_ERRORS + extra)).astype(float)
        spread = P95_SPREAD_AT_100 * np.sqrt(100 / np.maximum(requests, 1))
        p95 = P95_MS * slower * np.exp(shared + rng.normal(0, 0.03, minutes) + rng.normal(0, 1, minutes) * spread)
        for minute in np.flatnonzero((requests > 0) & (requests < 50)):  # few requests: their nearest-rank p95
            drawn = np.sort(MEDIAN_MS * slower * np.exp(shared[minute] + rng.normal(0, SIGMA, int(requests[minute]))))
            p95[minute] = drawn[max(0, math.ceil(0.95 * len(drawn)) - 1)]
        made.append(DeploymentMetrics(
            requests=int(requests.sum()), errors=int(errors.sum()),
            latency_p95_ms=float(p95[requests > 0].max()) if (requests > 0).any() else None,
            minutes=[START + timedelta(minutes=i) for i in range(minutes)],
            requests_per_minute=requests.tolist(), errors_per_minute=errors.tolist(),
            series={"RequestLatency_P95": [float(v) if n else None for v, n in zip(p95, requests, strict=True)]},
        ))
    return made[0], made[1]


def upto(metrics: DeploymentMetrics, minutes: int) -> DeploymentMetrics:
    """The step's first `minutes`, as the analysis after them reads it."""
    requests = metrics.requests_per_minute[:minutes]
    values = metrics.series["RequestLatency_P95"][:minutes]
    present = [value for value in values if value is not None]
    return DeploymentMetrics(
        requests=int(sum(requests)), errors=int(sum(metrics.errors_per_minute[:minutes])),
        latency_p95_ms=max(present) if present else None, minutes=metrics.minutes[:minutes],
        requests_per_minute=requests, errors_per_minute=metrics.errors_per_minute[:minutes],
        series={"RequestLatency_P95": values},
    )


def rollout(rng: np.random.Generator, scenario: Scenario, window: int) -> dict[str, tuple[str, int]]:
    """Both judges on the same minutes: per judge, the outcome and the analysis it came at."""
    outcomes: dict[str, tuple[str, int]] = {}
    steps = [series(rng, scenario, percent, window * ANALYSES) for percent in STEPS]
    for judge in ("absolute", "comparative"):
        outcome, at = "promoted", 0
        for number, (percent, (canary, champion)) in enumerate(zip(STEPS, steps, strict=True)):
            result = "inconclusive"
            for analysis in range(1, ANALYSES + 1):
                ours, theirs = upto(canary, analysis * window), upto(champion, analysis * window)
                if judge == "absolute":
                    result = analyze(ours, GATES).result
                else:
                    result = judge_step(ours, PLAN, theirs, "champion", (percent / 100, 1 - percent / 100)).result
                if result != "inconclusive":
                    break
            if result == "fail" or (result == "inconclusive" and judge == "absolute"):
                outcome, at = "rolled back", analysis + number * ANALYSES
                break
            if result == "inconclusive":
                outcome, at = "held", analysis + number * ANALYSES
                break
        outcomes[judge] = (outcome, at)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=5, help="minutes per analysis")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()
    compare = PLAN.compare
    assert compare is not None
    print(f"{args.rollouts} rollouts per scenario; one analysis = {args.window} minutes (PT1M points); "
          f"steps {STEPS} of up to {ANALYSES} analyses each; alpha {compare.alpha} over the rollout "
          f"(2 compared steps x {len(compare.metrics)} metrics), beta {compare.beta}")
    print(f"{'scenario':<24}{'judge':<13}{'rolled back':>12}{'promoted':>10}{'held':>7}"
          f"{'caught <=2':>11}{'analyses to roll back':>23}")
    found: dict[tuple[str, str], dict[str, float]] = {}
    for scenario in SCENARIOS:
        runs = [rollout(rng, scenario, args.window) for _ in range(args.rollouts)]
        for judge in ("absolute", "comparative"):
            outcomes = [run[judge] for run in runs]
            back = [at for outcome, at in outcomes if outcome == "rolled back"]
            share = {name: sum(outcome == name for outcome, _ in outcomes) / len(outcomes)
                     for name in ("rolled back", "promoted", "held")}
            share["caught"] = sum(at <= 2 for at in back) / len(outcomes)
            found[(scenario.name, judge)] = share
            median = f"{np.median(back):.0f} (p90 {np.percentile(back, 90):.0f})" if back else "-"
            print(f"{scenario.name:<24}{judge:<13}{share['rolled back']:>12.1%}{share['promoted']:>10.1%}"
                  f"{share['held']:>7.1%}{share['caught']:>11.1%}{median:>23}")
    print()
    aa = found[("A/A (noise only)", "comparative")]["rolled back"]
    caught = found[("latency 1.5x", "comparative")]["caught"]
    spike = found[("shared platform spike", "comparative")]["rolled back"]
    low = found[("low traffic (3/min)", "comparative")]["rolled back"]
    print(f"goal: false rollbacks on A/A <= 1 %: {aa:.1%} ({'met' if aa <= 0.01 else 'NOT met'})")
    print(f"goal: >= 95 % of 1.5x p95 regressions caught within 2 analyses: {caught:.1%} "
          f"({'met' if caught >= 0.95 else 'NOT met'})")
    print(f"goal: 0 good canaries rolled back by a shared spike: {spike:.1%} ({'met' if spike == 0 else 'NOT met'})")
    print(f"low traffic rolled back for lack of evidence: {low:.1%} "
          f"(today's judge: {found[('low traffic (3/min)', 'absolute')]['rolled back']:.1%})")
    print(f"in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
