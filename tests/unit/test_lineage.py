"""Lineage and evidence on a promoted version's registry copy, and a rule's champion history.

Pure functions (`machine.lineage`, `machine.gates_brief`, `champions.changed`) and the controller
on fakes of the ports: the copy gets the lineage as tags, and every change of a rule's champion
(replaced, rolled back, undone) is kept in `champion-history/<rule>` and served by the admin API.
Tag limits: Azure ML docs, "Service limits in Azure Machine Learning" (tag key 100, value 1,000).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain import champions
from shared.domain import lifecycle as machine
from shared.domain.champions import Champion
from shared.domain.decisions import judge
from shared.domain.notification import Table
from shared.domain.people import Person
from shared.domain.policy import Gate
from shared.domain.ports import ModelVersion
from shared.domain.records import (
    HistoryAction,
    Lifecycle,
    Phase,
    ReviewDecision,
    Rollout,
    RolloutAction,
    RolloutEntry,
    RolloutState,
    Split,
)
from shared.ops import handlers
from shared.ops.errors import ApiError
from shared.ops.models import ChampionPath, ModelPath, PromoteRequest
from shared.reactor import lifecycle, reactions
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import POLICY, fake_services
from tests.unit.test_lifecycle_controller import KEY, WITH_GRACE, register, stage, tick_until

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
GATES: dict[str, list[Any]] = {"header": ["metric", "check", "value", "threshold", "result"], "rows": [
    ["accuracy", ">=", "0.91", "0.8", "pass"],
    ["auc", ">= champion - 0.01", "0.95", "0.93", "pass"],
    ["latency", "<=", "12", "50", "pass"],
    ["f1", "vs champion", "0.7", "-", "pass (no champion yet)"],
]}
VERDICT = judge([Gate(metric="accuracy", min=0.8), Gate(metric="auc", max_drop=0.01), Gate(metric="latency", max=50),
                 Gate(metric="f1", max_drop=0.02)], {"accuracy": 0.91, "auc": 0.95, "latency": 12, "f1": 0.7},
                {"auc": 0.94})
BRIEF = ("accuracy=0.91>=0.8 pass; auc=0.95>=0.93 (champion - 0.01) pass; latency=12<=50 pass; "
         "f1=0.7 vs champion pass (no champion yet)")
OPS = handlers.Caller(Person("oid-ops", "ops", frozenset()), "c-1")
ADA = handlers.Caller(Person("oid-ada", "ada", frozenset()), "c-1")


def _record(**changes: object) -> Lifecycle:
    fields = {"model": "credit-risk", "version": "2", "workspace": "dev", "rule": "credit-risk", "stage": "passed",
              "test_job": "test-credit-risk-v2", "test_job_url": "https://ml.azure.com/runs/test-credit-risk-v2",
              "gates": VERDICT.table(), "verdict": VERDICT}
    return Lifecycle.model_validate({**fields, **changes})


def _model(job_name: str | None = "train-credit-risk-7") -> ModelVersion:
    return ModelVersion(location="dev", name="credit-risk", version="2", job_name=job_name)


# -- lineage tags (pure) -------------------------------------------------------------------


def test_the_lineage_names_source_jobs_gates_approval_and_rule() -> None:
    approval = ReviewDecision(approved=True, by="ada@contoso.com", at=NOW, reason="ok", via="api")

    tags = machine.lineage(_record(), _model(), approval)

    assert tags == {
        "mlops.source_workspace": "dev",
        "mlops.training_job": "train-credit-risk-7",
        "mlops.test_job": "test-credit-risk-v2",
        "mlops.test_job_url": "https://ml.azure.com/runs/test-credit-risk-v2",
        "mlops.gates": BRIEF,
        "mlops.approved_by": "ada@contoso.com",
        "mlops.approved_at": "2026-11-30T10:00:00+00:00",
        "mlops.rule": "credit-risk",
    }


def test_without_an_approval_or_a_known_training_job_those_tags_are_left_out() -> None:
    rejected = ReviewDecision(approved=False, by="ada@contoso.com", at=NOW, via="api")

    tags = machine.lineage(_record(), _model(job_name=None), rejected)

    assert "mlops.approved_by" not in tags and "mlops.approved_at" not in tags
    assert "mlops.training_job" not in tags


def test_the_training_job_comes_from_the_record_when_the_model_does_not_name_it() -> None:
    tags = machine.lineage(_record(training_job="train-from-review"), _model(job_name=None), None)

    assert tags["mlops.training_job"] == "train-from-review"


def test_the_verdict_the_brief_is_built_from_makes_the_same_table_as_before() -> None:
    assert VERDICT.table() == Table.model_validate(GATES)
    assert machine.gates_brief(_record()) == VERDICT.brief() == BRIEF


def test_a_version_judged_before_its_verdict_was_kept_has_the_same_brief_from_its_table() -> None:
    stored = _record().stored()
    del stored["verdict"]
    old = Lifecycle.model_validate(stored)

    assert old.verdict is None and old.gates == VERDICT.table()
    assert machine.lineage(old, _model(), None)["mlops.gates"] == BRIEF


def test_a_long_gate_brief_is_cut_to_azure_s_tag_value_limit_with_an_ellipsis() -> None:
    gates = [Gate(metric=f"metric_{n:03d}", min=0.8) for n in range(60)]
    verdict = judge(gates, {gate.metric: 0.9123 for gate in gates}, None)

    tags = machine.lineage(_record(gates=verdict.table(), verdict=verdict), _model(), None)

    brief = tags["mlops.gates"]
    assert len(brief) == machine.TAG_VALUE_LIMIT == 1000
    assert brief.endswith("\u2026") and brief.startswith("metric_000=0.9123>=0.8 pass; metric_001=")
    assert all(len(key) <= machine.TAG_KEY_LIMIT and len(value) <= 1000 for key, value in tags.items())


def test_a_version_without_gates_says_so() -> None:
    none = judge([], {}, None)
    assert machine.gates_brief(_record(gates=none.table(), verdict=none)) == "no gates"
    assert machine.gates_brief(_record(gates={"header": GATES["header"], "rows": []}, verdict=None)) == "no gates"
    assert machine.gates_brief(_record(gates=None, verdict=None)) == "not judged"


# -- champion history (pure) ----------------------------------------------------------------


def _champion(version: str, previous: Champion | None = None) -> Champion:
    return Champion(model="churn", version=version, endpoint="churn", workspace="prod",
                    deployment=f"churn-v{version}", since=NOW, previous=previous)


def test_the_first_champion_opens_the_history() -> None:
    history = champions.changed(None, "churn", None, _champion("1"), "replaced by v1", NOW)

    assert [(t.version, t.since, t.until, t.began, t.ended) for t in history.terms] == [
        ("1", NOW, None, "rolled out on churn", None)]


def test_a_replacement_closes_the_old_term_and_opens_the_new_one() -> None:
    later = NOW + timedelta(hours=2)
    first = champions.changed(None, "churn", None, _champion("1"), None, NOW)

    terms = champions.changed(first, "churn", _champion("1"), _champion("2", _champion("1")), "replaced by v2",
                              later).terms
    assert [(t.version, t.since, t.until, t.ended) for t in terms] == [
        ("1", NOW, later, "replaced by v2"), ("2", later, None, None)]


def test_taking_the_same_change_again_records_it_once() -> None:
    first = champions.changed(None, "churn", None, _champion("1"), None, NOW)
    second = champions.changed(first, "churn", _champion("1"), _champion("2"), "replaced by v2", NOW)

    again = champions.changed(second, "churn", _champion("2"), _champion("2"), "replaced by v2", NOW)

    assert again == second


def test_a_rollback_ends_the_term_and_the_previous_champion_serves_again() -> None:
    later = NOW + timedelta(hours=1)
    v2 = _champion("2", _champion("1"))
    stored = champions.changed(champions.changed(None, "churn", None, _champion("1"), None, NOW), "churn",
                               _champion("1"), v2, "replaced by v2", NOW)

    terms = champions.changed(stored, "churn", v2, _champion("1"), "undone by ada: complaints", later).terms
    assert [(t.version, t.ended) for t in terms] == [
        ("1", "replaced by v2"), ("2", "undone by ada: complaints"), ("1", None)]
    assert terms[-1].began == "serving again after v2: undone by ada: complaints"


def test_a_champion_crowned_before_the_history_gets_its_term_when_it_ends() -> None:
    earlier = NOW - timedelta(days=3)
    old = _champion("1").model_copy(update={"since": earlier})

    [term] = champions.changed(None, "churn", old, None, "rolled back: 5 errors in 7 requests", NOW).terms
    assert (term.version, term.since, term.until, term.ended) == ("1", earlier, NOW,
                                                                   "rolled back: 5 errors in 7 requests")


def test_the_rollout_s_outcome_says_why_the_champion_ends() -> None:
    record = _record(stage="live", version="2", model="churn")
    champion = _champion("2", _champion("1"))
    rollout = _rollout(RolloutState.ROLLED_BACK, "complaints")
    rollout.history.append(RolloutEntry(time=NOW, action=HistoryAction.UNDO, actor="ada", reason="complaints"))

    undone = machine.rollout_ended(record, rollout, champion, NOW)
    rollout.history.clear()
    rolled_back = machine.rollout_ended(record, rollout, champion, NOW)

    assert undone is not None and undone.succession == machine.Succession(champion.previous,
                                                                          "undone by ada: complaints")
    assert rolled_back is not None and rolled_back.succession is not None
    assert rolled_back.succession.ended == "rolled back: complaints"


def _rollout(state: RolloutState, reason: str = "") -> Rollout:
    rule = fake_services().policy.rule_named("churn")
    assert rule is not None and rule.rollout is not None
    return Rollout(id="r1", key=KEY, workspace="prod", endpoint="churn", deployment="churn-v2", rule="churn",
                   model="churn", version="2", plan=rule.rollout, baseline=Split(traffic={"churn-v1": 100}),
                   state=state, phase=Phase.STEP, started=NOW, rollback_reason=reason)


# -- the controller on fakes ------------------------------------------------------------------


def test_the_registry_copy_gets_the_lineage_when_the_controller_promotes() -> None:
    services = fake_services()

    register(services, "1")

    copy = services.platform.copies[("registry:shared", "churn", "1")]  # type: ignore[attr-defined]
    assert copy["mlops.source_workspace"] == "dev" and copy["mlops.rule"] == "churn"
    assert copy["mlops.test_job"] == "test-churn-v1"
    assert copy["mlops.gates"] == "no gates"  # the fake policy's rule has none


def test_the_champion_history_says_who_served_and_why_it_stopped() -> None:
    services = fake_services(WITH_GRACE)
    register(services, "1")
    tick_until(services, "1", "live")
    register(services, "2")
    tick_until(services, "2", "live")
    undone = engine.act(services, KEY, RolloutAction.UNDO, "ada", "complaints")
    lifecycle.follow(services, undone, "request-1")
    assert (stage(services, "2"), stage(services, "1")) == ("rolled_back", "live")

    answer = handlers.champion_history(services, ChampionPath(rule="churn"), OPS)

    assert [(t.version, t.ended) for t in answer.terms] == [
        ("1", "replaced by v2"), ("2", "undone by ada: complaints"), ("1", None)]
    assert answer.terms[-1].began == "serving again after v2: undone by ada: complaints"
    assert answer.terms[0].until == answer.terms[1].since


def test_a_rule_with_no_champion_yet_has_an_empty_history_and_an_unknown_rule_is_a_404() -> None:
    services = fake_services(POLICY)
    caller = OPS

    assert handlers.champion_history(services, ChampionPath(rule="churn"), caller).terms == []
    with pytest.raises(ApiError, match="no rule named 'nope'") as refused:
        handlers.champion_history(services, ChampionPath(rule="nope"), caller)
    assert refused.value.status == 404


def test_a_retried_tick_does_not_record_a_change_twice() -> None:
    services = fake_services()
    register(services, "1")
    tick_until(services, "1", "live")
    reactions.resync(services)
    reactions.tick_rollouts(services)

    stored = services.state.champion_histories.get("churn")
    assert stored is not None and [t.version for t in stored.terms] == ["1"]


# -- promotion by hand ------------------------------------------------------------------------------


def test_a_forced_promotion_by_hand_tags_the_copy_with_who_forced_it_and_why() -> None:
    services = fake_services()

    handlers.promote(services, ModelPath(location="dev", name="churn", version="7"),
                     PromoteRequest(force=True, reason="hotfix for incident 42"), ADA)

    assert services.platform.copies[("registry:shared", "churn", "7")] == {  # type: ignore[attr-defined]
        "mlops.source_workspace": "dev", "mlops.promoted_by": "ada", "mlops.forced": "hotfix for incident 42"}


def test_a_tested_version_promoted_by_hand_carries_its_lifecycle_s_evidence() -> None:
    services = fake_services()
    register(services, "1")
    services.platform.copies.clear()  # type: ignore[attr-defined]

    handlers.promote(services, ModelPath(location="dev", name="churn", version="1"), PromoteRequest(),
                     ADA)

    copy = services.platform.copies[("registry:shared", "churn", "1")]  # type: ignore[attr-defined]
    assert copy["mlops.test_job"] == "test-churn-v1" and copy["mlops.rule"] == "churn"
    assert copy["mlops.promoted_by"] == "ada" and "mlops.forced" not in copy
