"""Judge a canary against its champion over the same minutes: per metric, sequentially, then scored.

Kayenta's shape (Netflix and Google's automated canary analysis, behind Spinnaker and Argo Rollouts):
each metric of the rule is compared canary against baseline, classified `pass`, `high`, `low` or
`nodata`, and the weighted share of passing metrics is the score (pass, marginal, fail). Kayenta tests
one fixed window with Mann-Whitney U; a rollout looks again at every tick, and a fixed-sample test
looked at again and again fails far more often than its nominal rate. So each metric here is tested
with an anytime-valid test instead (Ville's inequality holds at every look, however many):

- a value per minute (a latency percentile, CPU): the log-ratio of the canary's minute to the
  champion's same minute, whose mean gets a normal-mixture confidence sequence (Robbins 1970; Howard,
  Ramdas, McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
  Ann. Statist. 2021). A shared platform spike moves both deployments and cancels in the ratio.
- counts per minute (errors among requests; requests normalised by traffic share): two proportions.
  Given a minute's total, the canary's part is binomial with a share fixed by the rates' ratio theta, so
  a mixture sequential probability ratio test of theta (Wald 1945; Robbins 1970; Johari, Pekelis and
  Walsh's mSPRT, "Always valid inference", 2017) decides "worse than tolerance" and "within it".
  "3 errors in 30 requests against 0 in 300" fails; "1 in 30 against 10 in 300" does not.

Pure: no I/O; numpy is imported lazily, by the tick that judges, not at every cold start. The
false-rollback rate `alpha` of `Comparison` is shared over the plan's compared phases and its metrics
(Bonferroni), so it holds for the whole rollout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from shared.domain.policy import Comparison, MetricComparison
from shared.domain.ports import DeploymentMetrics

if TYPE_CHECKING:
    import numpy as np

Classification = Literal["pass", "high", "low", "nodata"]
Verdict = Literal["pass", "marginal", "fail", "nodata"]
PLANNING_MINUTES = 3  # the normal mixture is tightest near a few paired minutes: an early decision
PRIOR_SIGMA = 0.15  # a minute's log-ratio spread assumed before there is data (two pseudo-minutes)
MIN_SIGMA = 0.02
MAX_LOG_RATIO = math.log(20.0)  # one wild minute (a cold start) moves the mean by a bounded amount
RATIO_GRID = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)  # alternatives the mixture SPRT spreads its bet over
MAX_MINUTES_NEEDED = 24 * 60
MIN_REQUESTS_PER_MINUTE = 5  # a minute's percentile of fewer requests is one request's latency, not a percentile


class MetricVerdict(BaseModel):
    """One metric's line in the analysis table."""

    metric: str
    label: str
    direction: Literal["increase", "decrease"]
    tolerance: float
    weight: float
    critical: bool = False
    classification: Classification
    canary: float | None = Field(None, description="the canary's value over the window (a median or a rate)")
    champion: float | None = None
    ratio: float | None = Field(None, description="canary / champion, estimated")
    ratio_low: float | None = Field(None, description="the ratio's anytime-valid bounds (1 - alpha)")
    ratio_high: float | None = None
    evidence: float = Field(1.0, description="the test's e-value against 'no worse than tolerance'")
    threshold: float = Field(description="the e-value (1 / alpha share) that fails the metric")
    minutes: int = 0
    needs_minutes: int | None = Field(None, description="about how many more minutes decide it (nodata)")
    canary_series: list[float | None] = Field(default_factory=list)
    champion_series: list[float | None] = Field(default_factory=list)

    @property
    def is_bad(self) -> bool:
        return self.classification == ("high" if self.direction == "increase" else "low")


class Judgement(BaseModel):
    """The comparison of one analysis: each metric's line and the weighted score."""

    verdict: Verdict
    score: float | None
    metrics: list[MetricVerdict]
    alpha: float = Field(description="false-rollback rate of this phase, shared by its metrics")
    minutes: int = Field(description="minutes of the window, canary and champion side by side")
    champion: str
    needs_minutes: int | None = None
    needs_requests: int | None = Field(None, description="about how many more canary requests decide it")
    reasons: list[str] = Field(default_factory=list)


def compare(canary: DeploymentMetrics, champion: DeploymentMetrics, rule: Comparison, *, champion_name: str,
            shares: tuple[float, float], phases: int) -> Judgement:
    """The canary against its champion over the minutes both were measured; `shares` are their parts of
    the traffic (the mirror's copies count as the canary's share), `phases` how many analysed phases the
    plan has (alpha is shared out over them and the metrics)."""
    alpha = rule.alpha / max(1, phases)
    per_metric = alpha / len(rule.metrics)
    lines = [_judge_metric(canary, champion, metric, per_metric, rule.beta, shares, rule.indifference)
             for metric in rule.metrics]
    decided = [line for line in lines if line.classification != "nodata"]
    total = sum(line.weight for line in decided)
    score = 100.0 * sum(line.weight for line in decided if not line.is_bad) / total if total else None
    bad = [line for line in lines if line.is_bad]
    reasons = [_reason(line) for line in bad]
    if any(line.critical for line in bad) or (score is not None and score < rule.marginal_score):
        verdict: Verdict = "fail"
    elif not decided or len(decided) < len(lines):
        verdict = "nodata"
        reasons = reasons or [f"{line.label}: not enough evidence yet" for line in lines if line not in decided]
    elif score is not None and score >= rule.pass_score:
        verdict = "pass"
    else:
        verdict = "marginal"
        reasons = reasons or [f"score {score:.0f} below {rule.pass_score:.0f}"]
    needs = [line.needs_minutes for line in lines if line.classification == "nodata" and line.needs_minutes]
    needs_minutes = max(needs) if needs and verdict == "nodata" else None
    rate = _per_minute_rate(canary)
    return Judgement(
        verdict=verdict, score=score, metrics=lines, alpha=alpha, minutes=len(_paired(canary, champion)),
        champion=champion_name, needs_minutes=needs_minutes,
        needs_requests=math.ceil(needs_minutes * rate) if needs_minutes and rate else None, reasons=reasons,
    )


def _reason(line: MetricVerdict) -> str:
    worse = "higher" if line.direction == "increase" else "lower"
    ratio = f"{line.ratio:.2f}x" if line.ratio is not None else "?"
    bound = line.ratio_low if line.direction == "increase" else line.ratio_high
    shown = f", at least {bound:.2f}x" if line.direction == "increase" and bound else (
        f", at most {bound:.2f}x" if bound else "")
    return f"{line.label} {worse} than the champion's: {ratio}{shown} (tolerance {line.tolerance:.0%})"


def _paired(canary: DeploymentMetrics, champion: DeploymentMetrics) -> list[tuple[int, int]]:
    """Index pairs (canary, champion) of the minutes both deployments were measured."""
    where = {minute: index for index, minute in enumerate(champion.minutes)}
    return [(index, where[minute]) for index, minute in enumerate(canary.minutes) if minute in where]


def _per_minute_rate(metrics: DeploymentMetrics) -> float:
    counts = metrics.requests_per_minute
    return sum(counts) / len(counts) if counts else 0.0


def _judge_metric(canary: DeploymentMetrics, champion: DeploymentMetrics, metric: MetricComparison,
                  alpha: float, beta: float, shares: tuple[float, float], indifference: float) -> MetricVerdict:
    pairs = _paired(canary, champion)
    if metric.metric == "RequestsPerMinute":
        return _judge_counts(canary, champion, metric, alpha, beta, shares, pairs, indifference)
    return _judge_values(canary, champion, metric, alpha, beta, pairs, indifference)


def bounds(metric: MetricComparison, indifference: float) -> tuple[float, float]:
    """The ratios canary / champion that fail (worse than this) and pass (better than this) the metric."""
    if metric.direction == "increase":
        return 1 + metric.tolerance, 1 + indifference * metric.tolerance
    return 1 - metric.tolerance, max(0.05, 1 - indifference * metric.tolerance)


def _line(metric: MetricComparison, alpha: float, **found: object) -> MetricVerdict:
    return MetricVerdict(metric=metric.metric, label=metric.label, direction=metric.direction,
                         tolerance=metric.tolerance, weight=metric.weight, critical=metric.critical,
                         threshold=1 / alpha, **found)  # type: ignore[arg-type]


# -- a value per minute: the log-ratio's confidence sequence ------------------------------------------


def mixture_halfwidth(n: int, sigma: float, alpha: float, planning: int = PLANNING_MINUTES) -> float:
    """Half-width of the two-sided normal-mixture confidence sequence for a mean after `n` points of
    spread `sigma`: |S_n| < sqrt((V + rho) log((V + rho) / (rho alpha^2))) with V = n sigma^2 and
    rho = planning * sigma^2 holds at every n at once with probability 1 - alpha (Howard et al. 2021,
    eq. 14, the normal mixture)."""
    v, rho = n * sigma**2, planning * sigma**2
    return math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha**2))) / n


def log_ratio_interval(logs: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """The mean log-ratio and its anytime-valid bounds. The spread is the sample's, pulled towards
    PRIOR_SIGMA by two pseudo-minutes so that three calm minutes do not claim certainty."""

    n = len(logs)
    mean = float(logs.mean())
    squares = float(((logs - mean) ** 2).sum()) + 2 * PRIOR_SIGMA**2
    sigma = max(MIN_SIGMA, math.sqrt(squares / (n - 1 + 2)))
    width = mixture_halfwidth(n, sigma, alpha)
    return mean, mean - width, mean + width


def _judge_values(canary: DeploymentMetrics, champion: DeploymentMetrics, metric: MetricComparison,
                  alpha: float, beta: float, pairs: list[tuple[int, int]], indifference: float) -> MetricVerdict:
    import numpy as np  # lazily: the tick that judges pays for it, not every cold start

    ours = canary.series.get(metric.metric, [])
    theirs = champion.series.get(metric.metric, [])
    both = [(ours[i], theirs[j]) for i, j in pairs if i < len(ours) and j < len(theirs)]
    enough = [i < len(ours) and j < len(theirs) and _at(canary.requests_per_minute, i) >= MIN_REQUESTS_PER_MINUTE
              and _at(champion.requests_per_minute, j) >= MIN_REQUESTS_PER_MINUTE for i, j in pairs]
    series = {"canary_series": [a for a, _ in both], "champion_series": [b for _, b in both]}
    if metric.metric.startswith("RequestLatency") and canary.requests_per_minute:
        both = [pair if ok else (None, None) for pair, ok in zip(both, enough, strict=False)]
    values = [(a, b) for a, b in both if a is not None and b is not None and a > 0 and b > 0]
    if len(values) < 2:
        return _line(metric, alpha, classification="nodata", minutes=len(values), needs_minutes=2 - len(values),
                     **series)
    logs = np.clip(np.log([a / b for a, b in values]), -MAX_LOG_RATIO, MAX_LOG_RATIO)
    mean, low, high = log_ratio_interval(logs, alpha)
    _, pass_low, pass_high = log_ratio_interval(logs, beta)
    sign = 1.0 if metric.direction == "increase" else -1.0
    fail_at, pass_at = (sign * math.log(ratio) for ratio in bounds(metric, indifference))
    worse_low = low if sign > 0 else -high  # the least bad the canary can be, on the bad side's scale
    better_high = pass_high if sign > 0 else -pass_low
    if worse_low > fail_at:
        classification: Classification = "high" if sign > 0 else "low"
    elif better_high < pass_at:
        classification = "pass"
    else:
        classification = "nodata"
    sigma = max(MIN_SIGMA, float(logs.std(ddof=1)) if len(logs) > 2 else PRIOR_SIGMA)
    gap = max(sign * mean - fail_at, pass_at - sign * mean)
    needs = _minutes_to_decide(len(values), gap, sigma, min(alpha, beta)) if classification == "nodata" else None
    return _line(metric, alpha, classification=classification,
                 canary=float(np.median([a for a, _ in values])), champion=float(np.median([b for _, b in values])),
                 ratio=math.exp(mean), ratio_low=math.exp(low), ratio_high=math.exp(high),
                 evidence=_normal_evidence(logs, sign * fail_at, sign), minutes=len(values), needs_minutes=needs,
                 **series)


def _normal_evidence(logs: np.ndarray, limit: float, sign: float) -> float:
    """The normal mixture's e-value against 'the mean log-ratio is on the good side of `limit`' (for the
    table; `sign` is -1 when a decrease is bad)."""
    n = len(logs)
    sigma = max(MIN_SIGMA, math.sqrt((float(((logs - logs.mean()) ** 2).sum()) + 2 * PRIOR_SIGMA**2) / (n + 1)))
    excess = sign * float((logs - limit).sum())
    if excess <= 0:
        return 1.0
    v, rho = n * sigma**2, PLANNING_MINUTES * sigma**2
    return float(math.sqrt(rho / (v + rho)) * math.exp(min(700.0, excess**2 / (2 * (v + rho)))))


def _minutes_to_decide(n: int, gap: float, sigma: float, alpha: float) -> int | None:
    """How many more minutes until the bound clears `gap`, if the mean and spread stay as they are."""
    if gap <= 0:
        return None
    for more in range(1, MAX_MINUTES_NEEDED):
        if mixture_halfwidth(n + more, sigma, alpha) < gap:
            return more
    return None


# -- counts per minute: two proportions, a mixture SPRT on the canary's part of each minute -----------


def canary_part(theta: float, canary: np.ndarray, champion: np.ndarray) -> np.ndarray:
    """The chance that one event of a minute is the canary's, when the canary's rate per unit of
    exposure is theta times the champion's and their exposures are `canary` and `champion`."""
    return theta * canary / (theta * canary + champion)


def mixture_evidence(hits: np.ndarray, totals: np.ndarray, exposure: tuple[np.ndarray, np.ndarray],
                     null: float, alternatives: Sequence[float]) -> float:
    """E-value of the mixture SPRT against `theta = null` (and every theta beyond it on the alternatives' side):
    the mean over `alternatives` of the likelihood ratio of the canary's part of each minute's events,
    binomial given the minute's total. It is a test martingale under the null, so Ville's inequality
    bounds the chance it ever reaches 1/alpha by alpha (Robbins 1970; Johari et al. 2017)."""
    import numpy as np  # lazily: the tick that judges pays for it, not every cold start

    canary, champion = exposure
    q0 = np.clip(canary_part(null, canary, champion), 1e-12, 1 - 1e-12)
    logs = []
    for theta in alternatives:
        q1 = np.clip(canary_part(theta, canary, champion), 1e-12, 1 - 1e-12)
        logs.append(float((hits * np.log(q1 / q0) + (totals - hits) * np.log((1 - q1) / (1 - q0))).sum()))
    top = max(logs)
    return float(math.exp(min(700.0, top)) * np.mean(np.exp(np.array(logs) - top)))


def _judge_counts(canary: DeploymentMetrics, champion: DeploymentMetrics, metric: MetricComparison,
                  alpha: float, beta: float, shares: tuple[float, float],
                  pairs: list[tuple[int, int]], indifference: float) -> MetricVerdict:
    import numpy as np  # lazily: the tick that judges pays for it, not every cold start

    requests_c = np.array([_at(canary.requests_per_minute, i) for i, _ in pairs], dtype=float)
    requests_b = np.array([_at(champion.requests_per_minute, j) for _, j in pairs], dtype=float)
    if metric.responses:  # errors among requests: the exposure is each deployment's requests
        hits = np.array([_at(canary.errors_per_minute, i) for i, _ in pairs], dtype=float)
        other = np.array([_at(champion.errors_per_minute, j) for _, j in pairs], dtype=float)
        exposure_c, exposure_b = requests_c, requests_b
        series = {"canary_series": [float(h / r) if r else None for h, r in zip(hits, requests_c, strict=True)],
                  "champion_series": [float(h / r) if r else None for h, r in zip(other, requests_b, strict=True)]}
    else:  # requests normalised by traffic share: the exposure is the share
        hits, other = requests_c, requests_b
        exposure_c = np.full(len(pairs), max(shares[0], 1e-9))
        exposure_b = np.full(len(pairs), max(shares[1], 1e-9))
        series = {"canary_series": [float(h / shares[0]) if shares[0] else None for h in hits],
                  "champion_series": [float(h / shares[1]) if shares[1] else None for h in other]}
    keep = (exposure_c > 0) & (exposure_b > 0)
    hits, other, exposure_c, exposure_b = hits[keep], other[keep], exposure_c[keep], exposure_b[keep]
    totals = hits + other
    rate_c = float(hits.sum() / exposure_c.sum()) if exposure_c.sum() else None
    rate_b = float(other.sum() / exposure_b.sum()) if exposure_b.sum() else None
    found: dict[str, object] = {"canary": rate_c, "champion": rate_b, "minutes": int(keep.sum()), **series}
    if rate_c is not None and rate_b:
        found["ratio"] = rate_c / rate_b
    increase = metric.direction == "increase"
    bound, good = bounds(metric, indifference)
    worse = [bound * k for k in RATIO_GRID] if increase else [bound / k for k in RATIO_GRID]
    better = [good / k for k in RATIO_GRID] if increase else [min(good * k, 1e6) for k in RATIO_GRID]
    exposure = (exposure_c, exposure_b)
    against_good = mixture_evidence(hits, totals, exposure, bound, worse) if totals.sum() else 1.0
    against_bad = mixture_evidence(hits, totals, exposure, good, better) if totals.sum() else 1.0
    found["evidence"] = against_good
    if against_good >= 1 / alpha:
        return _line(metric, alpha, classification="high" if increase else "low", **found)
    if against_bad >= 1 / beta or _no_errors_shown(metric, hits, other, exposure_c, beta):
        return _line(metric, alpha, classification="pass", **found)
    needs = _counts_needed(hits, totals, exposure, (bound, good), worse, better, alpha, beta)
    if needs is None and metric.responses and not totals.sum() and exposure_c.sum():
        # No error on either side yet: the zero-error bound decides after enough canary requests.
        short = math.log(1 / beta) / ERRORS_NEGLIGIBLE - exposure_c.sum()
        needs = max(1, math.ceil(short / (exposure_c.sum() / len(exposure_c))))
    return _line(metric, alpha, classification="nodata", needs_minutes=needs, **found)


def _no_errors_shown(metric: MetricComparison, hits: np.ndarray, other: np.ndarray, requests: np.ndarray,
                     beta: float) -> bool:
    """Neither deployment answered a single error: the proportions cannot be compared, but n requests
    without one error put the canary's error rate below ln(1/beta)/n at every n at once (the chance of no
    error in n requests at rate p is (1-p)^n ≤ e^(-pn)). Within 1 % counts as within tolerance here."""
    if not metric.responses or hits.sum() or other.sum():
        return False
    return bool(requests.sum() and math.log(1 / beta) / requests.sum() <= ERRORS_NEGLIGIBLE)


ERRORS_NEGLIGIBLE = 0.01


def _counts_needed(hits: np.ndarray, totals: np.ndarray, exposure: tuple[np.ndarray, np.ndarray],
                   nulls: tuple[float, float], worse: list[float], better: list[float], alpha: float,
                   beta: float) -> int | None:
    """More minutes like these until one of the two tests decides: the evidence's log grows about
    linearly with minutes when the minutes keep looking like the ones so far."""
    minutes = len(hits)
    if not minutes:
        return None
    best: int | None = None
    for null, alternatives, level in ((nulls[0], worse, alpha), (nulls[1], better, beta)):
        grown = math.log(max(mixture_evidence(hits, totals, exposure, null, alternatives), 1e-300))
        if grown > 0:
            more = math.ceil(minutes * (math.log(1 / level) - grown) / grown)
            best = more if best is None else min(best, more)
    return max(1, min(best, MAX_MINUTES_NEEDED)) if best is not None else None


def _at(values: list[float], index: int) -> float:
    return float(values[index]) if index < len(values) else 0.0

