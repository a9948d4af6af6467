"""The canary judged against its champion: each metric's test, the score, and the rollout's moves on it."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shared.domain import rollout as machine
from shared.domain.analysis import judge_step
from shared.domain.judge import Judgement, MetricVerdict, compare, mixture_evidence, mixture_halfwidth
from shared.domain.policy import Comparison, HealthGates, MetricComparison, PolicyError, RolloutPlan, parse_policy
from shared.domain.ports import Deployment, DeploymentMetrics, Endpoint
from shared.domain.records import Phase, Rollout, RolloutState, Split
from shared.domain.rollout import Measure, Tell

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
P95 = "RequestLatency_P95"
RULE = Comparison()


def minutes(requests: list[float], errors: list[float] | None = None, p95: Sequence[float | None] | None = None,
            start: datetime = NOW) -> DeploymentMetrics:
    """A deployment's window, minute by minute from `start`."""
    errors = errors or [0.0] * len(requests)
    return DeploymentMetrics(
        requests=round(sum(requests)), errors=round(sum(errors)), latency_p95_ms=max(filter(None, p95 or []),
                                                                                     default=None),
        minutes=[start + timedelta(minutes=i) for i in range(len(requests))], requests_per_minute=requests,
        errors_per_minute=errors, series={P95: list(p95) if p95 else [None] * len(requests)})


def noisy(level: float, count: int, seed: int, spread: float = 0.1) -> list[float]:
    rng = random.Random(seed)
    return [level * rng.lognormvariate(0, spread) for _ in range(count)]


def judged(canary: DeploymentMetrics, champion: DeploymentMetrics, rule: Comparison = RULE) -> Judgement:
    return compare(canary, champion, rule, champion_name="blue", shares=(0.1, 0.9), phases=1)


def by_label(judgement: Judgement, label: str) -> MetricVerdict:
    return next(line for line in judgement.metrics if line.label == label)


# the statistics ---------------------------------------------------------------------------------


def test_the_normal_mixture_boundary_narrows_with_minutes_and_widens_with_a_stricter_rate() -> None:
    widths = [mixture_halfwidth(n, 0.1, 0.01) for n in (2, 5, 10, 40)]
    assert widths == sorted(widths, reverse=True)
    assert mixture_halfwidth(10, 0.1, 0.001) > mixture_halfwidth(10, 0.1, 0.01)


def test_the_mixture_sprt_of_errors_stays_below_its_threshold_on_a_a_about_as_often_as_it_says() -> None:
    """Ville's inequality, checked: 500 A/A streams of 30 minutes, looked at every 3 minutes."""
    rng = np.random.default_rng(7)
    alpha, crossed = 0.05, 0
    canary, champion = np.full(30, 100.0), np.full(30, 900.0)
    for _ in range(500):
        hits = rng.binomial(100, 0.01, 30).astype(float)
        other = rng.binomial(900, 0.01, 30).astype(float)
        crossed += any(mixture_evidence(hits[:n], (hits + other)[:n], (canary[:n], champion[:n]), 1.0,
                                        [1.5, 2, 3, 5]) >= 1 / alpha for n in range(3, 31, 3))
    assert crossed / 500 <= alpha


def test_errors_are_two_proportions_3_in_30_against_0_in_300_is_not_1_in_30_against_10_in_300() -> None:
    worse = by_label(judged(minutes([30], [3], [50]), minutes([300], [0], [50])), "errors (5xx)")
    fine = by_label(judged(minutes([30], [1], [50]), minutes([300], [10], [50])), "errors (5xx)")
    assert worse.evidence > 10 * fine.evidence and fine.evidence < 1
    assert worse.needs_minutes is not None and fine.needs_minutes is not None
    assert worse.needs_minutes < fine.needs_minutes, "the worse canary is close to failing, the other is not"
    again = judged(minutes([30] * 3, [3] * 3, [50] * 3), minutes([300] * 3, [0] * 3, [50] * 3))
    assert by_label(again, "errors (5xx)").classification == "high" and again.verdict == "fail"
    calm = judged(minutes([30] * 3, [1] * 3, [50] * 3), minutes([300] * 3, [10] * 3, [50] * 3))
    assert by_label(calm, "errors (5xx)").classification != "high"


def test_a_canary_half_again_as_slow_is_high_and_fails_the_comparison() -> None:
    canary = minutes([100] * 10, p95=noisy(75, 10, 1))
    champion = minutes([900] * 10, p95=noisy(50, 10, 2))
    found = judged(canary, champion)
    line = by_label(found, P95)
    assert line.classification == "high" and line.ratio_low is not None and line.ratio_low > 1.1
    assert found.verdict == "fail" and "RequestLatency_P95 higher than the champion's" in found.reasons[0]
    assert len(line.canary_series) == len(line.champion_series) == 10


def test_a_spike_on_both_deployments_cancels_in_the_ratio() -> None:
    spike = [1.0] * 4 + [6.0] * 4 + [1.0] * 12
    canary = minutes([100] * 20, p95=[v * s for v, s in zip(noisy(50, 20, 3), spike, strict=True)])
    champion = minutes([900] * 20, p95=[v * s for v, s in zip(noisy(50, 20, 4, 0.035), spike, strict=True)])
    found = judged(canary, champion)
    assert by_label(found, P95).classification == "pass"
    assert found.verdict == "pass" and found.score == 100


def test_too_few_minutes_is_nodata_with_what_would_decide_it() -> None:
    found = judged(minutes([3], p95=[40]), minutes([27], p95=[41]))
    assert found.verdict == "nodata"
    assert found.needs_minutes is not None and found.needs_requests is not None


def test_a_minute_only_one_deployment_was_measured_in_is_left_out() -> None:
    canary = minutes([100] * 5, p95=noisy(50, 5, 5), start=NOW + timedelta(minutes=3))
    champion = minutes([900] * 5, p95=noisy(50, 5, 6))
    assert judged(canary, champion).minutes == 2


def test_a_weighted_score_between_marginal_and_pass_is_marginal() -> None:
    rule = Comparison(metrics=[MetricComparison(metric=P95, weight=1),
                               MetricComparison(metric="RequestsPerMinute", direction="decrease", tolerance=0.2,
                                                weight=4)], pass_score=95, marginal_score=75)
    canary = minutes([100] * 10, p95=noisy(80, 10, 7))
    champion = minutes([900] * 10, p95=noisy(50, 10, 8))
    found = judged(canary, champion, rule)
    assert (found.verdict, found.score) == ("marginal", 80.0)


def test_a_canary_taking_less_than_its_share_of_the_requests_is_low() -> None:
    found = judged(minutes([50] * 5, p95=[50] * 5), minutes([900] * 5, p95=[50] * 5))
    assert by_label(found, "request rate").classification == "low"


# the policy --------------------------------------------------------------------------------------


def test_a_comparison_names_only_documented_deployment_metrics() -> None:
    with pytest.raises(ValueError, match="'RequestLatency_P96' is not a metric of an online deployment"):
        MetricComparison(metric="RequestLatency_P96")
    with pytest.raises(ValueError, match="responses applies to RequestsPerMinute only"):
        MetricComparison(metric=P95, responses="5xx")


def test_a_typo_in_a_rule_s_metric_fails_validation_naming_the_rule_and_field() -> None:
    text = """
rules:
  - name: churn
    models: {name: churn}
    test: {pipeline: t}
    rollout:
      workspace: prod
      endpoint: churn
      compare: {metrics: [{metric: RequestLatency_p95}]}
"""
    with pytest.raises(PolicyError, match=r"rules\[0\] \(churn\)\.rollout\.compare\.metrics\[0\]\.metric"):
        parse_policy(text)


def test_the_shipped_policy_holds_for_lack_of_evidence_and_its_comparison_example_is_valid() -> None:
    from shared.domain.policy import APP_ROOT

    text = (APP_ROOT / "policy" / "policy.yaml").read_text()
    rule = parse_policy(text).rules[0]
    assert rule.rollout is not None and rule.rollout.on_no_evidence == "hold"
    lines, block = text.splitlines(), False
    for i, line in enumerate(lines):  # uncomment the `compare:` example down to its prose
        block = line.startswith("      # compare") or (block and line.startswith("      #   ") and
                                                       not line.startswith("      #   Its"))
        if block:
            lines[i] = line.replace("      # ", "      ", 1)
    example = "\n".join(lines)
    compared = parse_policy(example).rules[0].rollout
    assert compared is not None and compared.compare is not None
    assert [m.label for m in compared.compare.metrics] == ["RequestLatency_P95", "errors (5xx)", "request rate"]


# the rollout's moves on a comparison, on a fake clock -----------------------------------------


def compared_plan(**change: object) -> RolloutPlan:
    return RolloutPlan(workspace="prod", endpoint="churn", steps=[10, 50, 100], bake_seconds=60,
                       gates=HealthGates(min_requests=10, max_latency_p95_ms=250), compare=Comparison(),
                       inconclusive_limit=3, **change)  # type: ignore[arg-type]


def at_ten_percent(plan: RolloutPlan) -> Rollout:
    record = machine.begin("churn", plan, "churn", "3", "green",
                           Endpoint(workspace="prod", name="churn", provisioning_state="Succeeded",
                                    traffic={"blue": 100}), "test", NOW, "created").record
    return record.model_copy(update={"phase": Phase.STEP, "step": 0, "step_started": NOW,
                                     "target": Split(traffic={"blue": 90, "green": 10})})


def live(traffic: dict[str, int]) -> Endpoint:
    return Endpoint(workspace="prod", name="churn", provisioning_state="Succeeded", traffic=traffic,
                    deployments=[Deployment(name=name, model_uri=f"azureml:churn:{name}",
                                            provisioning_state="Succeeded") for name in ("blue", "green")])


LATER = NOW + timedelta(minutes=10)


def test_the_step_asks_for_the_champion_s_metrics_over_the_same_minutes() -> None:
    record = at_ten_percent(compared_plan())
    move = machine.advance(record, live({"blue": 90, "green": 10}), LATER, "timer")
    assert move.actions == [Measure(NOW, "blue", (P95, "RequestsPerMinute"))]


def test_a_canary_slower_than_its_champion_yet_under_the_absolute_limits_rolls_back() -> None:
    record = at_ten_percent(compared_plan())
    canary = minutes([100] * 10, p95=noisy(75, 10, 11))
    champion = minutes([900] * 10, p95=noisy(50, 10, 12))
    assert max(filter(None, canary.series[P95])) < 250, "under the absolute limit"
    move = machine.advance(record, live({"blue": 90, "green": 10}), LATER, "timer", canary, champion)
    assert move.record.state is RolloutState.ROLLING_BACK
    assert "RequestLatency_P95 higher than the champion's" in move.record.rollback_reason
    entry = move.record.history[-1]
    assert entry.action == "analysis:fail" and entry.analysis is not None and entry.analysis.comparison is not None
    assert entry.analysis.comparison.metrics[0].canary_series == [], "history keeps the table, not the series"
    assert move.record.analysis is not None and move.record.analysis.comparison is not None
    assert len(move.record.analysis.comparison.metrics[0].canary_series) == 10
    rolled = machine.applied(move.record, machine.Outcome.APPLIED, "", LATER, "timer")
    [tell] = rolled.actions
    assert isinstance(tell, Tell) and tell.table is not None and tell.table.rows[0][:2] == ("RequestLatency_P95",
                                                                                            "high")


def test_a_spike_on_both_deployments_passes_the_step() -> None:
    record = at_ten_percent(compared_plan())
    spike = [1.0] * 3 + [4.0] * 4 + [1.0] * 3
    # A minute's p95 of 100 requests varies by about 10 %, of 900 by about 3.5 % (docs/judging.md).
    canary = minutes([100] * 10, p95=[v * s for v, s in zip(noisy(50, 10, 13), spike, strict=True)])
    champion = minutes([900] * 10, p95=[v * s for v, s in zip(noisy(50, 10, 14, 0.035), spike, strict=True)])
    move = machine.advance(record, live({"blue": 90, "green": 10}), LATER, "timer", canary, champion)
    assert move.record.state is RolloutState.PROGRESSING and move.record.step == 1, move.record.history[-1].reason


def test_a_low_traffic_step_holds_and_says_how_much_more_evidence_it_needs() -> None:
    record = at_ten_percent(compared_plan())
    canary = minutes([1, 0, 1], p95=[40, None, 41])
    champion = minutes([9, 8, 10], p95=[42, 40, 43])
    for count in (1, 2, 3, 4):
        move = machine.advance(record, live({"blue": 90, "green": 10}), LATER, "timer", canary, champion)
        record = move.record
        assert record.state is RolloutState.PROGRESSING and record.inconclusive == count
    analysis = record.analysis
    assert analysis is not None and analysis.closeness is not None and analysis.needs_requests
    assert analysis.closeness.text.startswith("inconclusive 4 of 3: holds, ops told")
    assert "more requests" in analysis.closeness.text


def test_the_champion_is_the_deployment_that_served_most_before_the_rollout() -> None:
    record = at_ten_percent(compared_plan()).model_copy(
        update={"baseline": Split(traffic={"blue": 30, "red": 70})})
    assert machine.champion_of(record) == "red"
    first = at_ten_percent(compared_plan()).model_copy(update={"baseline": Split(traffic={})})
    assert machine.champion_of(first) is None


def test_without_a_champion_the_step_is_judged_on_the_absolute_gates() -> None:
    plan = compared_plan()
    found = judge_step(minutes([100] * 3, p95=[40] * 3), plan)
    assert found.result == "pass" and found.comparison is None
    assert math.isclose(found.observed["requests"] or 0, 300)


# the engine: both deployments read over the same minutes ------------------------------------------


def test_the_engine_reads_the_canary_and_its_champion_over_the_same_minutes_and_rolls_back_a_slower_one() -> None:
    from shared.reactor import rollout as engine
    from tests.unit.test_isolation_fakes import POLICY, clock_of, fake_services

    compared = POLICY.replace("steps: [50, 100]", "steps: [50, 100]\n      compare: {}").replace(
        "bake_seconds: 0", "bake_seconds: 600")
    services = fake_services(compared)
    platform = services.platform
    platform.add_serving("churn", "0")  # type: ignore[attr-defined]
    asked: list[tuple[str, datetime, datetime | None, tuple[str, ...]]] = []
    latency = {"churn-v0": noisy(50, 10, 21, 0.05), "churn-v1": noisy(75, 10, 22)}

    def read(workspace: str, endpoint: str, deployment: str, since: datetime, until: datetime | None = None,
             metrics: Sequence[str] = ()) -> DeploymentMetrics:
        asked.append((deployment, since, until, tuple(metrics)))
        return minutes([500.0] * 10, p95=latency[deployment], start=since)

    platform.get_deployment_metrics = read  # type: ignore[method-assign]
    rule = services.policy.rule_named("churn")
    assert rule is not None and rule.rollout is not None
    engine.start(services, rule.name, rule.rollout, "dev", "churn", "1", "event-1")
    engine.tick(services, engine.key_for("prod", "churn"))  # the first step: 50 %
    clock_of(services).advance(seconds=600)
    state = engine.tick(services, engine.key_for("prod", "churn"))

    [(canary, since, until, names), (champion, since_b, until_b, _)] = asked
    assert (canary, champion) == ("churn-v1", "churn-v0") and (since, until) == (since_b, until_b)
    assert until == clock_of(services).now and names == (P95, "RequestsPerMinute")
    assert state in ("rolling_back", "rolled_back")
    record = services.state.rollouts.get(engine.key_for("prod", "churn"))
    assert record is not None and "RequestLatency_P95 higher than the champion's" in record.rollback_reason


def test_importing_the_app_leaves_numpy_to_the_tick_that_judges() -> None:
    """The comparison's statistics are numpy's: a cold start that judges nothing must not pay for it."""
    import subprocess
    import sys

    from shared.domain.policy import APP_ROOT

    probe = "import sys, function_app; print('numpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=APP_ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_minutes_the_champion_broke_a_hard_limit_in_too_are_the_platform_s_not_the_canary_s() -> None:
    plan = compared_plan()  # p95 at most 250 ms
    spike = [1.0] * 3 + [6.0] * 3 + [1.0] * 6
    canary = minutes([100] * 12, p95=[v * s for v, s in zip(noisy(50, 12, 31), spike, strict=True)])
    champion = minutes([900] * 12, p95=[v * s for v, s in zip(noisy(50, 12, 32, 0.035), spike, strict=True)])
    shared = judge_step(canary, plan, champion, "blue", (0.1, 0.9))
    assert shared.result == "pass", shared.reasons
    assert "3 minutes left out of the hard limits: blue broke them too" in shared.reasons
    alone = judge_step(canary, plan, minutes([900] * 12, p95=noisy(50, 12, 33, 0.035)), "blue", (0.1, 0.9))
    assert alone.result == "fail" and any("latency p95" in reason for reason in alone.reasons)
