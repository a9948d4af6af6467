"""Shadow predictions compared with the champion's, pure: the mirror phase's judge of what a shadow predicts.

Both deployments log their outputs with Azure ML's data collector; each row carries the request's id in a
column (the collector batches requests into records with one `correlationid` each). `compare` joins the
two on that id and counts the requests they classify differently: a proportion with its Wilson score
interval, each bound one-sided at the gate's confidence. It fails when the lower bound is above
`max_disagreement`, passes when the upper bound is at or below it, and otherwise says how many more rows
it needs. Scores (the positive class's probability, or a regression's value) are compared as
distributions: the population stability index (PSI, ten bins at the champion's deciles) and the
two-sample Kolmogorov-Smirnov statistic with its asymptotic p-value.

When the rows cannot be paired (no id column, or ids that do not match: no document says that Azure keeps a
live request's id on its mirrored copy), the two deployments' distributions over the same window are
compared instead. The share of requests classified differently is then at least the total variation
distance between the class mixes, bounded here per class by Newcombe's interval of a difference of
proportions; a disagreement that keeps the class mix (as many 0 -> 1 as 1 -> 0) cannot be seen that way,
and the reasons say so.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from shared.domain.analysis import Analysis, Result
from shared.domain.policy import ShadowGate
from shared.domain.ports import CollectedPrediction

Method = Literal["paired", "unpaired", "none"]
BINS = 10
EPSILON = 1e-4  # the share given to an empty bin, so that the PSI stays finite
MAX_NEEDED = 10_000_000


class ShadowComparison(BaseModel):
    """What the shadow predicted against the champion, with the sample it rests on and its uncertainty."""

    result: Result
    reasons: list[str]
    method: Method
    champion_rows: int
    shadow_rows: int
    compared: int = 0
    disagreements: int | None = None
    disagreement: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float
    psi: float | None = None
    ks: float | None = None
    ks_p: float | None = None
    needed_rows: int | None = None

    def observed(self) -> dict[str, float | None]:
        """The figures kept with the analysis and told to ops (`shadow_*`)."""
        return {"shadow_compared": float(self.compared), "shadow_paired": float(self.method == "paired"),
                "shadow_disagreement": self.disagreement, "shadow_disagreement_low": self.low,
                "shadow_disagreement_high": self.high, "shadow_psi": self.psi, "shadow_ks": self.ks,
                "shadow_ks_p": self.ks_p}


def compare(champion: Sequence[CollectedPrediction], shadow: Sequence[CollectedPrediction],
            gate: ShadowGate) -> ShadowComparison:
    """Judge the shadow's rows against the champion's over the same window (see the module)."""
    by_id = {row.id: row for row in champion if row.id is not None}
    pairs = [(by_id[row.id], row) for row in shadow if row.id is not None and row.id in by_id]
    base: dict[str, Any] = {"champion_rows": len(champion), "shadow_rows": len(shadow),
                            "confidence": gate.confidence}
    if len(pairs) >= gate.min_rows or (pairs and 2 * len(pairs) >= len(shadow)):
        return _paired(pairs, gate, base)
    if min(len(champion), len(shadow)) >= gate.min_rows:
        return _unpaired(champion, shadow, gate, base)
    return ShadowComparison(result="inconclusive", method="none", **base, reasons=[
        f"only {len(shadow)} shadow and {len(champion)} champion rows collected ({len(pairs)} paired), "
        f"{gate.min_rows} needed to compare predictions"])


def judged(verdict: Analysis, comparison: ShadowComparison | None) -> Analysis:
    """The mirror phase's verdict: the health verdict and the prediction comparison, the worse of the two."""
    if comparison is None:
        comparison_result: Result = "inconclusive"
        reasons, observed = ["predictions not compared yet"], {}
    else:
        comparison_result, reasons, observed = comparison.result, comparison.reasons, comparison.observed()
    order = {"fail": 2, "inconclusive": 1, "pass": 0}
    result = max(verdict.result, comparison_result, key=lambda found: order[found])
    kept = [*(verdict.reasons if verdict.result == result else []),
            *(reasons if comparison_result == result else [])]
    return verdict.model_copy(update={"result": result, "reasons": kept,
                                      "observed": {**verdict.observed, **observed}})


def _paired(pairs: list[tuple[CollectedPrediction, CollectedPrediction]], gate: ShadowGate,
            base: dict[str, Any]) -> ShadowComparison:
    z = _z(gate.confidence)
    labelled = [(a.label, b.label) for a, b in pairs if a.label is not None and b.label is not None]
    scores = _scores([a for a, _ in pairs], [b for _, b in pairs])
    figures = dict(compared=len(pairs), **scores)
    results: list[tuple[Result, str]] = []
    needed = None
    n = len(labelled)
    if labelled:
        k = sum(a != b for a, b in labelled)
        low, high = wilson(k, n, z)
        figures.update(disagreements=k, disagreement=k / n, low=low, high=high)
        said = (f"the shadow classifies {k} of {n} requests differently ({k / n:.1%}; {low:.1%} to {high:.1%} at "
                f"{gate.confidence:.0%} confidence)")
        if n < gate.min_rows:
            results.append(("inconclusive", f"only {n} paired rows, {gate.min_rows} needed to judge predictions"))
        elif low > gate.max_disagreement:
            results.append(("fail", f"{said} > {gate.max_disagreement:.1%}"))
        elif high <= gate.max_disagreement:
            results.append(("pass", f"{said} <= {gate.max_disagreement:.1%}"))
        else:
            needed = rows_needed(k, n, gate.max_disagreement, z)
            results.append(("inconclusive", f"{said}: about {needed} more paired rows needed to tell it from "
                                            f"{gate.max_disagreement:.1%}"))
    results += _psi_gate(scores.get("psi"), gate, n or len(pairs))
    return _decided(results, "paired", base, figures, needed)


def _unpaired(champion: Sequence[CollectedPrediction], shadow: Sequence[CollectedPrediction], gate: ShadowGate,
              base: dict[str, Any]) -> ShadowComparison:
    z = _z(gate.confidence)
    a = Counter(row.label for row in champion if row.label is not None)
    b = Counter(row.label for row in shadow if row.label is not None)
    scores = _scores(champion, shadow)
    figures = dict(compared=min(len(champion), len(shadow)), **scores)
    results: list[tuple[Result, str]] = []
    na, nb = sum(a.values()), sum(b.values())
    if na and nb:
        lows, highs, estimate = [], [], 0.0
        for label in set(a) | set(b):
            low, high = newcombe_abs(a[label], na, b[label], nb, z)
            lows.append(low)
            highs.append(high)
            estimate += abs(a[label] / na - b[label] / nb) / 2
        low, high = max(lows), min(1.0, sum(highs) / 2)
        figures.update(disagreement=estimate, low=low, high=high)
        said = (f"rows not paired by id: the class mixes of {nb} shadow and {na} champion rows differ by "
                f"{estimate:.1%} ({low:.1%} to {high:.1%} at {gate.confidence:.0%} confidence)")
        if low > gate.max_disagreement:
            results.append(("fail", f"{said}: at least {low:.1%} of requests are classified differently > "
                                    f"{gate.max_disagreement:.1%}"))
        elif high <= gate.max_disagreement:
            results.append(("pass", f"{said} <= {gate.max_disagreement:.1%}; a disagreement that keeps the class "
                                    "mix cannot be seen without the id column"))
        else:
            results.append(("inconclusive", f"{said}: more rows needed"))
    results += _psi_gate(scores.get("psi"), gate, min(len(champion), len(shadow)))
    return _decided(results, "unpaired", base, figures, None)


def _decided(results: list[tuple[Result, str]], method: Method, base: dict[str, Any], figures: dict[str, Any],
             needed: int | None) -> ShadowComparison:
    if not results:
        results = [("inconclusive", "neither classes nor scores to compare in the collected rows")]
    for result in ("fail", "inconclusive", "pass"):
        reasons = [reason for found, reason in results if found == result]
        if reasons:
            return ShadowComparison(result=result, reasons=reasons, method=method, needed_rows=needed,
                                    **base, **figures)
    raise AssertionError("unreachable")


def _psi_gate(psi: float | None, gate: ShadowGate, rows: int) -> list[tuple[Result, str]]:
    if gate.max_psi is None or psi is None:
        return []
    if rows < gate.min_rows:
        return [("inconclusive", f"only {rows} rows of scores, {gate.min_rows} needed to judge their shift")]
    verdict: Result = "fail" if psi > gate.max_psi else "pass"
    return [(verdict, f"score PSI {psi:.3f} {'>' if verdict == 'fail' else '<='} {gate.max_psi:g}")]


def _scores(champion: Sequence[CollectedPrediction], shadow: Sequence[CollectedPrediction]) -> dict[str, float]:
    a = [row.score for row in champion if row.score is not None]
    b = [row.score for row in shadow if row.score is not None]
    if not a or not b:
        return {}
    ks, p = kolmogorov_smirnov(a, b)
    return {"psi": psi(a, b), "ks": ks, "ks_p": p}


def _z(confidence: float) -> float:
    """The standard normal quantile of a one-sided confidence (statistics is imported only when judging: the
    rollout tick's cold start does not pay for it)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence)


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of k successes in n trials; each bound one-sided at the z given."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_abs(ka: int, na: int, kb: int, nb: int, z: float) -> tuple[float, float]:
    """Bounds of |pa - pb| from Newcombe's hybrid score interval of the difference (his method 10)."""
    pa, pb = ka / na, kb / nb
    la, ua = wilson(ka, na, z)
    lb, ub = wilson(kb, nb, z)
    difference = pa - pb
    lower = difference - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    upper = difference + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    low = lower if lower > 0 else (-upper if upper < 0 else 0.0)
    return low, max(abs(lower), abs(upper))


def rows_needed(k: int, n: int, limit: float, z: float) -> int:
    """About how many more rows, at the rate seen, before the interval leaves `limit` behind."""
    p = k / n
    gap = abs(p - limit)
    if gap == 0:
        return MAX_NEEDED
    total = z * z * max(p * (1 - p), 1 / n) / (gap * gap)
    return int(min(MAX_NEEDED, max(1, math.ceil(total - n))))


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of `actual` against `expected`, in BINS bins at `expected`'s quantiles."""
    ordered = sorted(expected)
    edges = sorted({ordered[min(len(ordered) - 1, len(ordered) * i // BINS)] for i in range(1, BINS)})
    share_e, share_a = _shares(expected, edges), _shares(actual, edges)
    return sum((a - e) * math.log(a / e) for e, a in zip(share_e, share_a, strict=True))


def _shares(values: Sequence[float], edges: list[float]) -> list[float]:
    counts = Counter(bisect.bisect_right(edges, value) for value in values)
    return [max(counts[i] / len(values), EPSILON) for i in range(len(edges) + 1)]


def kolmogorov_smirnov(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The two-sample KS statistic and its asymptotic p-value (Kolmogorov's distribution, Stephens' correction)."""
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(xs) and j < len(ys):
        value = min(xs[i], ys[j])
        while i < len(xs) and xs[i] == value:
            i += 1
        while j < len(ys) and ys[j] == value:
            j += 1
        d = max(d, abs(i / len(xs) - j / len(ys)))
    effective = math.sqrt(len(xs) * len(ys) / (len(xs) + len(ys)))
    lam = (effective + 0.12 + 0.11 / effective) * d
    if lam < 0.2:
        return d, 1.0
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))
