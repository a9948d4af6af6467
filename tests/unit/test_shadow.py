"""Shadow predictions compared: the pure comparison (paired by the id column, or by distributions when rows
cannot be paired), the mirror phase's verdict in the rollout machine, and the engine reading both
deployments' collected rows through the `PredictionLogs` port (a fake here) on a fake clock."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from localaml.collector import sampled
from localaml.scoring import flipped
from shared.adapters.azureml.collected import records
from shared.domain import rollout as machine
from shared.domain import shadow
from shared.domain.analysis import Analysis
from shared.domain.policy import MirrorPhase, PolicyError, ShadowGate, parse_policy
from shared.domain.ports import CollectedPrediction, DeploymentSpec
from shared.domain.records import Phase, RolloutState, Split
from shared.domain.rollout import SetTraffic, Tell
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import POLICY, START, clock_of, fake_services
from tests.unit.test_rollout_machine import HEALTHY, LATER, NOW, endpoint, plan, rollout

GATE = ShadowGate(max_disagreement=0.05, min_rows=100)


def rows(n: int, flip: float = 0.0, seed: int = 1, ids: bool = True, prefix: str = "r",
         positive: float = 0.5) -> tuple[list[CollectedPrediction], list[CollectedPrediction]]:
    """The champion's and the shadow's rows for n requests; the shadow flips each class with probability `flip`."""
    rng = random.Random(seed)
    champion, challenger = [], []
    for index in range(n):
        score = rng.random() * 0.5 + (0.5 if rng.random() < positive else 0.0)
        label = int(score >= 0.5)
        flipped = rng.random() < flip
        row_id = f"{prefix}{index}:0" if ids else None
        champion.append(CollectedPrediction(id=row_id, time=NOW, label=str(label), score=score))
        challenger.append(CollectedPrediction(id=row_id, time=NOW, label=str(1 - label if flipped else label),
                                              score=1 - score if flipped else score))
    return champion, challenger


# the comparison -----------------------------------------------------------------------------------


def test_a_shadow_that_classifies_10_percent_of_requests_differently_fails_with_its_interval() -> None:
    comparison = shadow.compare(*rows(400, flip=0.10), GATE)
    assert (comparison.result, comparison.method, comparison.compared) == ("fail", "paired", 400)
    assert comparison.low is not None and comparison.low > 0.05
    assert comparison.disagreements == round(comparison.disagreement * 400)  # type: ignore[operator]
    assert "differently" in comparison.reasons[0] and "95% confidence" in comparison.reasons[0]


def test_an_agreeing_shadow_passes_once_the_interval_is_below_the_gate() -> None:
    comparison = shadow.compare(*rows(200), GATE)
    assert (comparison.result, comparison.disagreement) == ("pass", 0.0)
    assert comparison.high is not None and comparison.high <= 0.05


def test_a_disagreement_near_the_gate_waits_and_says_how_many_more_rows_it_needs() -> None:
    comparison = shadow.compare(*rows(200, flip=0.05, seed=3), GATE)
    assert comparison.result == "inconclusive"
    assert comparison.needed_rows is not None and comparison.needed_rows > 0
    assert f"about {comparison.needed_rows} more paired rows" in comparison.reasons[0]


def test_too_few_rows_is_inconclusive_never_a_pass() -> None:
    assert shadow.compare(*rows(30), GATE).result == "inconclusive"
    nothing = shadow.compare([], [], GATE)
    assert (nothing.result, nothing.method) == ("inconclusive", "none")


def test_rows_that_cannot_be_paired_are_compared_as_distributions_and_say_what_that_cannot_see() -> None:
    champion, _ = rows(500, ids=False, positive=0.5)
    _, moved = rows(500, ids=False, positive=0.8, seed=2)
    failed = shadow.compare(champion, moved, GATE)
    assert (failed.result, failed.method) == ("fail", "unpaired")
    assert "at least" in failed.reasons[0]

    champion, challenger = rows(2000, flip=0.10, ids=False)  # flips both ways: the class mix stays
    passed = shadow.compare(champion, challenger, GATE.model_copy(update={"max_disagreement": 0.1}))
    assert (passed.result, passed.method) == ("pass", "unpaired")
    assert "cannot be seen without the id column" in passed.reasons[0]


def test_ids_of_other_requests_do_not_pair() -> None:
    champion, _ = rows(300, prefix="a")
    _, challenger = rows(300, prefix="b")
    assert shadow.compare(champion, challenger, GATE).method == "unpaired"


def test_a_score_shift_beyond_max_psi_fails_even_when_every_class_agrees() -> None:
    champion, challenger = rows(400)
    shifted = [row.model_copy(update={"score": 0.5 + (row.score or 0) / 2 if row.label == "1" else (row.score or 0)
                                      / 4}) for row in challenger]
    gate = GATE.model_copy(update={"max_psi": 0.25})
    comparison = shadow.compare(champion, shifted, gate)
    assert comparison.result == "fail" and comparison.psi is not None and comparison.psi > 0.25
    assert any(reason.startswith("score PSI") for reason in comparison.reasons)
    assert shadow.compare(champion, challenger, gate).result == "pass"


def test_the_statistics_match_known_values() -> None:
    low, high = shadow.wilson(0, 100, 1.6449)
    assert low == 0.0 and high == pytest.approx(0.0263, abs=1e-4)
    low, high = shadow.wilson(10, 100, 1.96)  # Wilson (1927) as tabulated by Newcombe (1998), 95 %
    assert (low, high) == (pytest.approx(0.0552, abs=1e-4), pytest.approx(0.1744, abs=1e-4))
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(5)
    a, b = [rng.gauss(0, 1) for _ in range(300)], [rng.gauss(0.3, 1) for _ in range(200)]
    expected = scipy_stats.ks_2samp(a, b, method="asymp")
    ks, p = shadow.kolmogorov_smirnov(a, b)
    assert ks == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue, rel=0.1)
    assert shadow.psi(a, a) == pytest.approx(0.0)


# the mirror phase's verdict ---------------------------------------------------------------------------


def mirroring(gate: ShadowGate | None = GATE) -> machine.Rollout:
    return rollout(plan(mirror=MirrorPhase(percent=20, bake_seconds=30, predictions=gate)), phase=Phase.MIRROR,
                   step_started=NOW, target=Split(traffic={"blue": 100}, mirror={"green": 20}))


def test_a_disagreeing_shadow_rolls_back_from_the_mirror_phase_with_the_comparison_recorded_and_told() -> None:
    record = mirroring()
    comparison = shadow.compare(*rows(400, flip=0.10), GATE)
    move = machine.advance(record, endpoint({"blue": 100}, {"green": 20}), LATER, "timer", HEALTHY,
                           predictions=comparison)
    assert move.record.state is RolloutState.ROLLING_BACK
    assert [a.traffic for a in move.actions if isinstance(a, SetTraffic)] == [{"blue": 100}]
    analysis = move.record.history[-1]
    assert analysis.action == "analysis:fail" and "differently" in analysis.reason
    assert analysis.metrics and analysis.metrics["shadow_disagreement"] == comparison.disagreement
    assert analysis.metrics["shadow_paired"] == 1.0 and analysis.metrics["requests"] == 100

    done = machine.applied(move.record, machine.Outcome.APPLIED, "", LATER, "timer")
    told = next(a for a in done.actions if isinstance(a, Tell))
    facts = dict(told.facts)
    assert told.kind == "rollout.rolled_back" and "differently" in told.summary
    assert float(facts["shadow_disagreement"]) == pytest.approx(comparison.disagreement, rel=1e-3)
    assert float(facts["shadow_disagreement_low"]) > 0.05


def test_an_agreeing_shadow_goes_on_to_the_first_step() -> None:
    move = machine.advance(mirroring(), endpoint({"blue": 100}, {"green": 20}), LATER, "timer", HEALTHY,
                           predictions=shadow.compare(*rows(200), GATE))
    assert move.record.phase is Phase.STEP and move.record.step == 0


def test_a_mirror_phase_without_a_comparison_waits_and_one_without_a_gate_ignores_predictions() -> None:
    waiting = machine.advance(mirroring(), endpoint({"blue": 100}, {"green": 20}), LATER, "timer", HEALTHY)
    assert waiting.record.phase is Phase.MIRROR and waiting.record.inconclusive == 1
    assert waiting.record.history[-1].reason == "predictions not compared yet"
    ungated = machine.advance(mirroring(None), endpoint({"blue": 100}, {"green": 20}), LATER, "timer", HEALTHY)
    assert ungated.record.phase is Phase.STEP


def test_judged_keeps_the_worse_verdict_and_both_sets_of_figures() -> None:
    failing = Analysis(result="fail", reasons=["error rate"], observed={"requests": 5.0})
    merged = shadow.judged(failing, shadow.compare(*rows(200), GATE))
    assert (merged.result, merged.reasons) == ("fail", ["error rate"])
    assert merged.observed["requests"] == 5.0 and merged.observed["shadow_disagreement"] == 0.0


# the engine, on the fake port ---------------------------------------------------------------------------

MIRRORED = POLICY.replace("      steps: [50, 100]", "      mirror: {percent: 20, bake_seconds: 60, "
                          "predictions: {max_disagreement: 0.05, min_rows: 100}}\n      steps: [50, 100]")


@dataclass
class FakeLogs:
    """`PredictionLogs` on rows given per deployment; remembers what it was asked."""

    rows: dict[str, list[CollectedPrediction]] = field(default_factory=dict)
    asked: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    def collected(self, workspace: str, endpoint: str, deployment: str, since: datetime,
                  until: datetime) -> list[CollectedPrediction]:
        self.asked.append((deployment, since, until))
        return [row for row in self.rows.get(deployment, []) if since <= row.time <= until]


def test_the_engine_compares_the_shadows_rows_with_the_champions_and_never_gives_a_disagreeing_shadow_traffic(
) -> None:
    services = fake_services(MIRRORED)
    logs = FakeLogs()
    services._predictions = logs
    specs: list[DeploymentSpec] = []
    create = services.platform.create_deployment

    def recording(*args: Any) -> None:
        specs.append(args[-1])
        create(*args)

    services.platform.create_deployment = recording  # type: ignore[method-assign,assignment]
    services.platform.add_serving("churn", "0")  # type: ignore[attr-defined]
    rule = services.policy.rule_named("churn")
    assert rule is not None and rule.rollout is not None
    engine.start(services, rule.name, rule.rollout, "dev", "churn", "1", "event-1")
    key = engine.key_for("prod", "churn")
    engine.tick(services, key)
    assert specs[-1].collect_predictions, "the shadow's data collector is on"
    assert services.platform.get_endpoint("prod", "churn").mirror_traffic == {"churn-v1": 20}

    champion, challenger = rows(300, flip=0.10)
    at = START + timedelta(seconds=30)
    logs.rows = {"churn-v0": [r.model_copy(update={"time": at}) for r in champion],
                 "churn-v1": [r.model_copy(update={"time": at}) for r in challenger]}
    clock_of(services).advance(seconds=60)
    engine.tick(services, key)
    engine.tick(services, key)

    record = services.state.rollouts.get(key)
    assert record is not None and record.state is RolloutState.ROLLED_BACK
    assert "step" not in [entry.action for entry in record.history], "never took live traffic"
    assert {deployment for deployment, _, _ in logs.asked} == {"churn-v0", "churn-v1"}
    assert all(since == START and until == START + timedelta(seconds=60) for _, since, until in logs.asked)
    assert services.platform.serving() == {"churn-v0": 100}  # type: ignore[attr-defined]
    sent = services.notifier.sent  # type: ignore[attr-defined]
    rolled_back = next(n for n in sent.values() if n.kind == "rollout.rolled_back")
    assert "differently" in rolled_back.summary and "shadow_disagreement" in dict(rolled_back.facts)


# the policy section ----------------------------------------------------------------------------------------


def test_the_policy_reads_the_mirror_phases_prediction_gate_and_names_the_field_at_fault() -> None:
    rule = parse_policy(MIRRORED).rule_named("churn")
    assert rule is not None and rule.rollout is not None and rule.rollout.mirror is not None
    assert rule.rollout.mirror.predictions == ShadowGate(max_disagreement=0.05, min_rows=100)
    with pytest.raises(PolicyError, match=r"rules\[0\] \(churn\)\.rollout\.mirror\.predictions\.max_disagreement"):
        parse_policy(MIRRORED.replace("max_disagreement: 0.05", "max_disagreement: 2"))
    with pytest.raises(PolicyError, match=r"mirror\.predictions\.max_rate: Extra inputs"):
        parse_policy(MIRRORED.replace("max_disagreement: 0.05", "max_rate: 0.05"))


def test_the_shipped_policys_commented_prediction_gate_is_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "policy" / "policy.yaml").read_text()
    example = next(line for line in text.splitlines() if "# mirror:" in line and "predictions" in line)
    enabled = text.replace("      mirror: {percent: 20, bake_seconds: 2}\n", example.replace("# ", "", 1) + "\n", 1)
    rule = parse_policy(enabled).rule_named("credit-risk")
    assert rule is not None and rule.rollout is not None and rule.rollout.mirror is not None
    assert rule.rollout.mirror.predictions == ShadowGate(max_disagreement=0.05, min_rows=100)


# reading the collector's lines, and the local service's faults ------------------------------------------------


def test_collected_lines_are_read_as_rows_and_what_is_not_a_record_is_skipped() -> None:
    record = {"time": "2026-12-01T09:00:30Z", "data": [
        {"correlationid": "a:0", "prediction": 1, "probabilities": [0.2, 0.8]},
        {"correlationid": "a:1", "prediction": 2.5},  # a regression: its value is the score
        {"prediction": [1, 2]},  # not a class nor a score
    ]}
    early = {**record, "time": "2026-12-01T08:59:59Z"}
    content = "\n".join([json.dumps(record), "not json", json.dumps({"time": "x"}), json.dumps(early)]).encode()
    found = records(content, NOW, NOW + timedelta(minutes=1))
    assert [(row.id, row.label, row.score) for row in found] == [("a:0", "1", 0.8), ("a:1", None, 2.5)]


def test_the_local_flip_fault_changes_that_share_of_classes_and_rolls_their_probabilities() -> None:
    predictions, probabilities = [0, 1] * 500, [[0.9, 0.1], [0.3, 0.7]] * 500
    answer = flipped({"predictions": predictions, "probabilities": probabilities}, 0.1, random.Random(3))
    changed = [i for i, (a, b) in enumerate(zip(predictions, answer["predictions"], strict=True)) if a != b]
    assert 60 < len(changed) < 140
    assert all(answer["probabilities"][i] == probabilities[i][::-1] for i in changed)
    assert sampled("request-1", 0.5) == sampled("request-1", 0.5) and sampled("any", 1.0)
