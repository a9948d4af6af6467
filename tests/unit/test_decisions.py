"""Pure decisions: names, gate verdicts, rollout analysis and traffic splits."""

from __future__ import annotations

import pytest

from shared.domain.analysis import analyze, split
from shared.domain.decisions import deployment_name, evaluation_job_name, judge, retrain_job_name
from shared.domain.policy import Gate, HealthGates
from shared.domain.ports import DeploymentMetrics


def test_names_are_deterministic_and_fit_azure_ml_limits() -> None:
    assert evaluation_job_name("credit-risk", "3") == evaluation_job_name("credit-risk", "3") == "test-credit-risk-v3"
    assert deployment_name("credit-risk", "3") == "credit-risk-v3"
    long = deployment_name("a-very-long-model-name-for-the-fraud-team", "123")
    assert len(long) <= 32 and long[0].isalpha()
    assert long != deployment_name("a-very-long-model-name-for-the-fraud-team", "124")
    assert deployment_name("9lives", "1").startswith("m-")
    assert retrain_job_name("credit-risk", "run-1") != retrain_job_name("credit-risk", "run-2")


GATES = [Gate(metric="accuracy", min=0.8), Gate(metric="latency_p95_ms", max=50), Gate(metric="auc", max_drop=0.01)]


def test_a_model_within_every_gate_passes() -> None:
    verdict = judge(GATES, {"accuracy": 0.9, "latency_p95_ms": 10, "auc": 0.95}, {"auc": 0.955})
    assert verdict.passed
    assert [row[-1] for row in verdict.table().rows] == ["pass", "pass", "pass"]


def test_each_failed_gate_is_in_the_table_with_value_and_threshold() -> None:
    verdict = judge(GATES, {"accuracy": 0.5, "latency_p95_ms": 80, "auc": 0.90}, {"auc": 0.95})
    assert not verdict.passed
    rows = verdict.table().rows
    assert rows[0] == ("accuracy", ">=", "0.5", "0.8", "FAIL")
    assert rows[1] == ("latency_p95_ms", "<=", "80", "50", "FAIL")
    assert rows[2] == ("auc", ">= champion - 0.01", "0.9", "0.94", "FAIL")


def test_a_missing_metric_fails_and_no_champion_passes_the_comparison() -> None:
    verdict = judge(GATES, {"auc": 0.7, "latency_p95_ms": 5}, None)
    results = {r.metric: r for r in verdict.results}
    assert not results["accuracy"].passed and results["accuracy"].note == "missing"
    assert results["auc"].passed and results["auc"].note == "no champion yet"


GATES_LIVE = HealthGates(max_error_rate=0.05, max_latency_p95_ms=200, min_requests=20)


@pytest.mark.parametrize(
    ("metrics", "result"),
    [
        (DeploymentMetrics(requests=100, errors=1, latency_p95_ms=20), "pass"),
        (DeploymentMetrics(requests=100, errors=20, latency_p95_ms=20), "fail"),
        (DeploymentMetrics(requests=100, errors=0, latency_p95_ms=500), "fail"),
        (DeploymentMetrics(requests=5, errors=0, latency_p95_ms=20), "inconclusive"),
        (DeploymentMetrics(requests=0, errors=0), "inconclusive"),
        (DeploymentMetrics(requests=10, errors=3), "fail"),
    ],
)
def test_too_few_requests_is_inconclusive_never_a_pass(metrics: DeploymentMetrics, result: str) -> None:
    assert analyze(metrics, GATES_LIVE).result == result


@pytest.mark.parametrize(
    ("baseline", "percent", "expected"),
    [
        ({"blue": 100}, 10, {"blue": 90, "green": 10}),
        ({"blue": 70, "old": 30}, 50, {"blue": 35, "old": 15, "green": 50}),
        ({"blue": 100}, 100, {"blue": 0, "green": 100}),
        ({}, 10, {"green": 100}),
        ({"blue": 100, "idle": 0}, 25, {"blue": 75, "idle": 0, "green": 25}),
    ],
)
def test_traffic_splits_always_sum_to_100(baseline: dict, percent: int, expected: dict) -> None:
    result = split(baseline, "green", percent)
    assert result == expected
    assert sum(result.values()) == 100


def test_the_table_and_the_brief_are_built_from_the_same_results() -> None:
    verdict = judge([*GATES, Gate(metric="f1", max_drop=0.02)], {"accuracy": 0.91, "latency_p95_ms": 12, "auc": 0.95,
                                                                 "f1": 0.7}, {"auc": 0.94})
    assert verdict.table().header == ("metric", "check", "value", "threshold", "result")
    assert verdict.table().rows == (
        ("accuracy", ">=", "0.91", "0.8", "pass"), ("latency_p95_ms", "<=", "12", "50", "pass"),
        ("auc", ">= champion - 0.01", "0.95", "0.93", "pass"),
        ("f1", "vs champion", "0.7", "-", "pass (no champion yet)"),
    )
    assert verdict.brief() == ("accuracy=0.91>=0.8 pass; latency_p95_ms=12<=50 pass; auc=0.95>=0.93 (champion - 0.01) "
                               "pass; f1=0.7 vs champion pass (no champion yet)")
    missing = judge(GATES, {}, None)
    assert missing.brief() == ("accuracy=- present FAIL (missing); latency_p95_ms=- present FAIL (missing); "
                               "auc=- vs champion FAIL (missing)")
    assert judge([], {}, None).brief() == "no gates"


def test_failed_gates_are_described_for_people() -> None:
    verdict = judge(GATES, {"latency_p95_ms": 80, "auc": 0.90}, {"auc": 0.95})
    assert [r.describe() for r in verdict.results if not r.passed] == [
        "accuracy missing", "latency_p95_ms 80 > 50", "auc 0.9 < 0.94 (champion - 0.01)",
    ]
