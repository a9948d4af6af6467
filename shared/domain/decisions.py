"""Pure decisions: deterministic names, gate verdicts, drift. No I/O, easy to test.

Deterministic names make every action idempotent: a repeated submission finds the
job it submitted before, a repeated rollout finds its deployment.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import BaseModel

from shared.domain.notification import Table
from shared.domain.policy import Gate, Rule

_UNSAFE = re.compile(r"[^a-z0-9-]+")


def _slug(text: str) -> str:
    return _UNSAFE.sub("-", text.lower()).strip("-") or "x"


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:6]


def evaluation_job_name(model: str, version: str) -> str:
    """`test-credit-risk-v3`: one test job per model version."""
    return _bounded(f"test-{_slug(model)}-v{_slug(version)}", 255, model, version)


def retrain_job_name(rule: str, drift_run_id: str) -> str:
    """One retraining job per drift detection run (v1) or monitoring run (v2), whatever the duplicates."""
    return _bounded(f"retrain-{_slug(rule)}-{_short_hash(drift_run_id)}", 255, rule, drift_run_id)


def breach_notification_id(rule: str, job_name: str, signals: list[str]) -> str:
    """One notification per retraining job and set of breached signals.

    Each signal of a monitoring run reports its breach on its own run (so its own event): they share
    the retraining job, and ops still hear of every signal; a redelivered event sends nothing twice.
    """
    return f"retraining.started:{_slug(rule)[:60]}:{job_name[:80]}:{_short_hash(*sorted(signals))}"


def deployment_name(model: str, version: str) -> str:
    """`credit-risk-v3`: Azure ML deployment names are 3-32 characters, starting with a letter."""
    name = f"{_slug(model)}-v{_slug(version)}"
    if not name[0].isalpha():
        name = "m-" + name
    return _bounded(name, 32, model, version)


def _bounded(name: str, limit: int, *parts: str) -> str:
    if len(name) <= limit:
        return name
    suffix = "-" + _short_hash(*parts)
    return name[: limit - len(suffix)].rstrip("-") + suffix


GateCheck = Literal[">=", "<=", "present", "vs champion"]


class GateResult(BaseModel):
    """One gate's result. `check` is how the value was judged: at least or at most `threshold`, present at all
    (a missing value), or against a champion there is none of yet. `max_drop` is set when the threshold is the
    champion's value less it."""

    metric: str
    check: GateCheck
    value: float | None
    threshold: float | None
    max_drop: float | None = None
    passed: bool
    note: str = ""

    @property
    def baseline(self) -> str:
        """Where the threshold came from, when not from the policy: `champion - 0.01`."""
        return f"champion - {self.max_drop:g}" if self.max_drop is not None else ""

    @property
    def checked(self) -> str:
        """The check as the gate table shows it: `>=`, `>= champion - 0.01`, `present`..."""
        return f"{self.check} {self.baseline}" if self.baseline else self.check

    @property
    def result(self) -> str:
        """`pass`, `FAIL`, with the note if any: `pass (no champion yet)`."""
        return ("pass" if self.passed else "FAIL") + (f" ({self.note})" if self.note else "")

    def describe(self) -> str:
        """`accuracy 0.478 < 0.8`, `auc 0.91 < 0.94 (champion - 0.01)`, `f1 missing`."""
        if self.value is None:
            return f"{self.metric} missing"
        relation = {">=": "<", "<=": ">"}.get(self.check, "vs")
        baseline = f" ({self.baseline})" if self.baseline else ""
        return f"{self.metric} {_fmt(self.value)} {relation} {_fmt(self.threshold)}{baseline}"

    def brief(self) -> str:
        """`auc=0.95>=0.93 (champion - 0.01) pass`, `f1=0.7 vs champion pass (no champion yet)`."""
        if self.check in (">=", "<="):
            baseline = f" ({self.baseline})" if self.baseline else ""
            return f"{self.metric}={_fmt(self.value)}{self.check}{_fmt(self.threshold)}{baseline} {self.result}"
        return f"{self.metric}={_fmt(self.value)} {self.check} {self.result}"


class Verdict(BaseModel):
    passed: bool
    results: list[GateResult]

    def table(self) -> Table:
        """The gate table for people: gate, check, value, threshold, result."""
        return Table(header=("metric", "check", "value", "threshold", "result"), rows=tuple(
            (r.metric, r.checked, _fmt(r.value), _fmt(r.threshold), r.result) for r in self.results
        ))

    def brief(self) -> str:
        """`accuracy=0.91>=0.8 pass; auc=0.95>=0.93 (champion - 0.01) pass`: the gates on one line."""
        return "; ".join(result.brief() for result in self.results) or "no gates"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def judge(gates: list[Gate], metrics: dict[str, float], champion: dict[str, float | None] | None) -> Verdict:
    """Judge a model's test metrics against the rule's gates (and the champion's metrics)."""
    results = [_judge_one(gate, metrics, champion) for gate in gates]
    return Verdict(passed=all(r.passed for r in results), results=results)


def _judge_one(gate: Gate, metrics: dict[str, float], champion: dict[str, float | None] | None) -> GateResult:
    value = metrics.get(gate.metric)
    if gate.max_drop is not None:
        baseline = (champion or {}).get(gate.metric)
        if baseline is None:
            return GateResult(metric=gate.metric, check="vs champion", value=value, threshold=None,
                              passed=value is not None, note="no champion yet" if value is not None else "missing")
        threshold = baseline - gate.max_drop
        return GateResult(metric=gate.metric, check=">=", value=value, threshold=threshold, max_drop=gate.max_drop,
                          passed=value is not None and value >= threshold, note="" if value is not None else "missing")
    if value is None:
        bound = gate.min if gate.min is not None else gate.max
        return GateResult(metric=gate.metric, check="present", value=None, threshold=bound, passed=False,
                          note="missing")
    if gate.min is not None:
        return GateResult(metric=gate.metric, check=">=", value=value, threshold=gate.min, passed=value >= gate.min)
    return GateResult(metric=gate.metric, check="<=", value=value, threshold=gate.max,
                      passed=value <= (gate.max if gate.max is not None else value))


def drift_needs_retraining(rule: Rule, coefficient: float) -> bool:
    """v1 dataset drift: the coefficient reached the rule's threshold."""
    return rule.drift is not None and rule.drift.threshold is not None and coefficient >= rule.drift.threshold
