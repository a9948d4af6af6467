"""Every transition of the lifecycle state machine, pure: no storage, no platform, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.domain import lifecycle as machine
from shared.domain.champions import Champion
from shared.domain.policy import Gate, HealthGates, RolloutPlan
from shared.domain.ports import Deployment, Endpoint, Job, JobStatus, ModelVersion
from shared.domain.records import Lifecycle, Phase, Rollout, RolloutState, Split, Stage

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PLAN = RolloutPlan(workspace="prod", endpoint="churn", steps=[50, 100], gates=HealthGates(min_requests=1))
GATES = [Gate(metric="accuracy", min=0.8), Gate(metric="auc", max_drop=0.01)]


def lifecycle(version: str = "3", stage: Stage = Stage.TESTING, **change: Any) -> Lifecycle:
    return Lifecycle(model="churn", version=version, workspace="dev", uri=f"azureml:churn:{version}", rule="churn",
                     stage=stage, test_job=f"test-churn-v{version}", **change)


def job(status: JobStatus = JobStatus.COMPLETED, **metrics: float) -> Job:
    return Job(workspace="dev", name="test-churn-v3", status=status, metrics=metrics,
               studio_url="https://ml.azure.com/runs/test-churn-v3")


def rollout(version: str = "3", state: RolloutState = RolloutState.SUCCEEDED, reason: str = "") -> Rollout:
    return Rollout(id=f"churn/churn-v{version}", key="prod.churn", workspace="prod", endpoint="churn",
                   deployment=f"churn-v{version}", rule="churn", model="churn", version=version, plan=PLAN,
                   baseline=Split(traffic={"churn-v2": 100}), state=state, phase=Phase.STEP, step=1, started=NOW,
                   rollback_reason=reason)


def champion(version: str, previous: Champion | None = None) -> Champion:
    return Champion(model="churn", version=version, endpoint="churn", deployment=f"churn-v{version}",
                    metrics={"auc": 0.9}, previous=previous)


# testing -> passed | failed ----------------------------------------------------------------


def test_a_running_test_job_is_waited_for() -> None:
    assert machine.judged(lifecycle(), job(JobStatus.RUNNING), GATES, None) is None


def test_a_version_that_passes_every_gate_passes_with_its_gate_table_and_ops_are_told() -> None:
    move = machine.judged(lifecycle(), job(accuracy=0.9, auc=0.95), GATES, {"auc": 0.9})
    assert move is not None and (move.stage, move.tag) == (Stage.PASSED, "passed")
    assert move.changes["metrics"] == {"accuracy": 0.9, "auc": 0.95}
    assert move.changes["gates"] == move.changes["verdict"].table() and move.changes["gates"].rows[1][-1] == "pass"
    [notification] = move.told
    assert notification.kind == "model.tested" and notification.link == "https://ml.azure.com/runs/test-churn-v3"


def test_a_version_below_a_gate_fails_naming_the_gate() -> None:
    move = machine.judged(lifecycle(), job(accuracy=0.7, auc=0.95), GATES, None)
    assert move is not None and (move.stage, move.tag) == (Stage.FAILED, "rejected")
    assert move.reason == "failed gates: accuracy 0.7 < 0.8"
    assert move.told[0].kind == "model.rejected" and move.told[0].table is not None


def test_a_version_worse_than_the_champion_by_more_than_allowed_fails() -> None:
    move = machine.judged(lifecycle(), job(accuracy=0.9, auc=0.85), GATES, {"auc": 0.9})
    assert move is not None and move.stage is Stage.FAILED and "auc 0.85 < 0.89 (champion - 0.01)" in move.reason


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELED])
def test_a_test_job_that_did_not_complete_fails_the_version(status: JobStatus) -> None:
    move = machine.judged(lifecycle(), job(status), GATES, None)
    assert move is not None and move.stage is Stage.FAILED and f"{status.value}" in move.reason


@pytest.mark.parametrize("status, metrics", [(JobStatus.COMPLETED, {"accuracy": 0.9, "auc": 0.95}),
                                             (JobStatus.COMPLETED, {"accuracy": 0.7, "auc": 0.95}),
                                             (JobStatus.FAILED, {})])
def test_a_judged_version_keeps_its_test_jobs_studio_url_whatever_the_verdict(
    status: JobStatus, metrics: dict[str, float]
) -> None:
    """The control room links each version's test job; passed, failed gates or a failed job alike."""
    move = machine.judged(lifecycle(), job(status, **metrics), GATES, None)
    assert move is not None and move.changes["test_job_url"] == "https://ml.azure.com/runs/test-churn-v3"
    judged = lifecycle().model_copy(update=move.changes)
    assert Lifecycle.model_validate(judged.stored()).test_job_url == "https://ml.azure.com/runs/test-churn-v3"


# passed -> promoted --------------------------------------------------------------------------


def test_a_promoted_version_serves_from_its_last_copy_and_ops_hear_where_it_went() -> None:
    copy = ModelVersion(location="registry:shared", name="churn", version="3",
                        uri="azureml://registries/shared/models/churn/versions/3")
    move = machine.promoted(lifecycle(stage=Stage.PASSED), {"registry:shared": copy.uri}, copy)
    assert (move.stage, move.tag, move.changes["serving_location"]) == (Stage.PROMOTED, "promoted", "registry:shared")
    assert move.told[0].facts == (("registry:shared", copy.uri),)


def test_without_a_promotion_path_the_version_is_promoted_where_it_is_and_nobody_is_told() -> None:
    here = ModelVersion(location="dev", name="churn", version="3", uri="azureml:churn:3")
    move = machine.promoted(lifecycle(stage=Stage.PASSED), {}, here)
    assert move.told == [] and move.reason == "promoted to nowhere (no promotion path)"


# promoted -> rolling_out | superseded ---------------------------------------------------------


def test_a_waiting_version_starts_its_rollout() -> None:
    move = machine.rollout_started(lifecycle(stage=Stage.PROMOTED), rollout(state=RolloutState.PROGRESSING))
    assert move.stage is Stage.ROLLING_OUT
    assert move.changes == {"rollout": "churn/churn-v3", "rollout_key": "prod.churn", "deployment": "churn-v3"}


@pytest.mark.parametrize(("current", "champ", "others", "expected"), [
    (rollout("9", RolloutState.PROGRESSING), None, [], ("9", "rolling out on churn")),
    (rollout("9", RolloutState.SUCCEEDED), None, [], ("9", "live on churn")),
    (None, champion("9"), [], ("9", "serving on churn")),
    (None, None, [lifecycle("13", Stage.PROMOTED)], ("13", "waiting for churn")),
    (rollout("9", RolloutState.PROGRESSING), None, [lifecycle("13", Stage.ROLLING_OUT)],
     ("13", "rolling out on churn")),
    (rollout("2", RolloutState.SUCCEEDED), champion("2"), [lifecycle("1", Stage.PROMOTED)], None),
    (rollout("9", RolloutState.ROLLED_BACK), champion("9"), [], None),  # the undo took the champion off
    (rollout("3", RolloutState.PROGRESSING), champion("9"), [], None),  # its own rollout started: go on
])
def test_a_newer_version_waiting_rolling_out_or_serving_is_found(current: Rollout | None, champ: Champion | None,
                                                                 others: list[Lifecycle], expected: Any) -> None:
    assert machine.newer_version(lifecycle(stage=Stage.PROMOTED), PLAN, current, champ, others) == expected


def test_versions_that_are_not_numbers_are_never_ordered_by_a_guess() -> None:
    record = lifecycle("beta", Stage.PROMOTED)
    assert machine.newer_version(record, PLAN, None, champion("9"), [lifecycle("alpha", Stage.PROMOTED)]) is None


def test_an_overtaken_version_is_superseded_reported_and_never_deployed() -> None:
    move = machine.overtaken(lifecycle(stage=Stage.PROMOTED), ("13", "waiting for churn"))
    assert (move.stage, move.tag, move.changes) == (Stage.SUPERSEDED, "superseded", {"superseded_by": "13"})
    assert move.told[0].kind == "model.superseded" and "v13" in move.told[0].title


# rolling_out -> live | rolled_back; live -> rolled_back --------------------------------------------


def test_a_rollout_still_going_is_waited_for() -> None:
    record = lifecycle(stage=Stage.ROLLING_OUT)
    assert machine.rollout_ended(record, rollout(state=RolloutState.PAUSED), None, NOW) is None
    assert machine.rollout_ended(record, None, None, NOW) is None


def test_a_succeeded_rollout_makes_the_version_live_and_champion_and_its_predecessor_is_followed() -> None:
    record = lifecycle(stage=Stage.ROLLING_OUT, metrics={"auc": 0.95})
    move = machine.rollout_ended(record, rollout(), champion("2"), NOW)
    assert move is not None and (move.stage, move.tag, move.follow) == (Stage.LIVE, "live", ["churn:2"])
    assert move.succession is not None and move.succession.ended == "replaced by v3"
    crowned = move.succession.champion
    assert crowned is not None and (crowned.version, crowned.metrics, crowned.since) == ("3", {"auc": 0.95}, NOW)
    assert crowned.previous == champion("2") and crowned.previous.previous is None


@pytest.mark.parametrize("state", [RolloutState.ROLLED_BACK, RolloutState.FAILED])
def test_a_rollout_that_did_not_succeed_rolls_the_version_back_with_its_reason(state: RolloutState) -> None:
    move = machine.rollout_ended(lifecycle(stage=Stage.ROLLING_OUT), rollout(state=state, reason="error rate 30%"),
                                 champion("2"), NOW)
    assert move is not None and (move.stage, move.reason, move.succession) == (Stage.ROLLED_BACK, "error rate 30%",
                                                                                None)


def test_an_undone_live_version_gives_the_champion_back_to_its_predecessor() -> None:
    previous = champion("2")
    move = machine.rollout_ended(lifecycle(stage=Stage.LIVE), rollout(state=RolloutState.ROLLED_BACK, reason="undo"),
                                 champion("3", previous), NOW)
    assert move is not None and (move.stage, move.follow) == (Stage.ROLLED_BACK, ["churn:2"])
    assert move.succession == machine.Succession(previous, "rolled back: undo")


def test_an_undone_first_version_leaves_no_champion() -> None:
    move = machine.rollout_ended(lifecycle(stage=Stage.LIVE), rollout(state=RolloutState.ROLLED_BACK),
                                 champion("3"), NOW)
    assert move is not None and move.succession == machine.Succession(None, "rolled back: its rollout rolled_back")
    assert move.follow == []


def test_a_live_version_whose_rollout_succeeded_stays_live() -> None:
    assert machine.rollout_ended(lifecycle(stage=Stage.LIVE), rollout(), champion("3"), NOW) is None


# live <-> superseded -> retired -------------------------------------------------------------------


def test_a_live_version_another_replaced_as_champion_is_superseded() -> None:
    move = machine.champion_changed(lifecycle("2", Stage.LIVE), champion("3"))
    assert move is not None and (move.stage, move.tag, move.changes) == (
        Stage.SUPERSEDED, "superseded", {"superseded_by": "3"})


def test_a_superseded_version_that_is_champion_again_is_live_again() -> None:
    move = machine.champion_changed(lifecycle("2", Stage.SUPERSEDED, deployment="churn-v2"), champion("2"))
    assert move is not None and move.stage is Stage.LIVE


@pytest.mark.parametrize(("record", "champ"), [
    (lifecycle("3", Stage.LIVE), champion("3")),
    (lifecycle("2", Stage.SUPERSEDED), champion("3")),
    (lifecycle("3", Stage.LIVE), None),
])
def test_a_champion_that_did_not_change_moves_nothing(record: Lifecycle, champ: Champion | None) -> None:
    assert machine.champion_changed(record, champ) is None


def test_a_superseded_version_is_retired_once_its_deployment_is_gone() -> None:
    record = lifecycle("2", Stage.SUPERSEDED, deployment="churn-v2")
    still = Endpoint(workspace="prod", name="churn", deployments=[Deployment(name="churn-v2", model_uri="m")])
    assert machine.retirement(record, still) is None
    move = machine.retirement(record, Endpoint(workspace="prod", name="churn"))
    assert move is not None and (move.stage, move.tag) == (Stage.RETIRED, "retired")


def test_a_version_superseded_before_it_was_deployed_has_nothing_to_retire() -> None:
    assert machine.retirement(lifecycle("2", Stage.SUPERSEDED), Endpoint(workspace="prod", name="churn")) is None


# what the resync and the rollout ticks look at ----------------------------------------------------------


@pytest.mark.parametrize(("stored", "watched"), [
    ({"stage": "testing"}, True), ({"stage": "passed"}, True), ({"stage": "promoted"}, True),
    ({"stage": "rolling_out"}, True), ({"stage": "live"}, True),
    ({"stage": "superseded", "deployment": "churn-v2"}, True), ({"stage": "superseded"}, False),
    ({"stage": "failed"}, False), ({"stage": "rolled_back"}, False), ({"stage": "retired"}, False),
])
def test_the_resync_watches_every_stage_that_has_somewhere_to_go(stored: dict, watched: bool) -> None:
    assert machine.watched(lifecycle(**stored)) is watched


@pytest.mark.parametrize(("stage", "state", "awaits"), [
    ("rolling_out", RolloutState.SUCCEEDED, True), ("rolling_out", RolloutState.ROLLED_BACK, True),
    ("rolling_out", RolloutState.PROGRESSING, False), ("live", RolloutState.ROLLED_BACK, True),
    ("live", RolloutState.SUCCEEDED, False), ("rolled_back", RolloutState.ROLLED_BACK, False),
])
def test_an_ended_rollout_is_followed_by_its_version_only_when_the_outcome_is_new(
        stage: str, state: RolloutState, awaits: bool) -> None:
    assert machine.awaits(lifecycle(stage=Stage(stage)), rollout(state=state)) is awaits


def test_testing_is_superseded_by_a_newer_version_that_passed_and_its_running_job_canceled() -> None:
    record = lifecycle("3")
    newer = [lifecycle("4", Stage.PASSED), lifecycle("5", Stage.PROMOTED), lifecycle("6"), lifecycle("9", Stage.FAILED),
             record]

    move = machine.overtaken_in_testing(record, job(JobStatus.RUNNING), newer)

    assert move is not None
    assert (move.stage, move.changes, move.tag, move.cancel) == (
        Stage.SUPERSEDED, {"superseded_by": "5"}, "superseded", "test-churn-v3")
    assert [notice.kind for notice in move.told] == [machine.SUPERSEDED]


@pytest.mark.parametrize(
    ("status", "others"),
    [
        (JobStatus.COMPLETED, [lifecycle("4", Stage.PASSED)]),  # the job has ended: it is judged
        (JobStatus.RUNNING, [lifecycle("4")]),  # the newer one is still testing: it may fail
        (JobStatus.RUNNING, [lifecycle("2", Stage.PASSED)]),  # only older versions
        (JobStatus.RUNNING, [lifecycle("4", Stage.PASSED).model_copy(update={"rule": "other"})]),  # another rule's
        (JobStatus.RUNNING, [lifecycle("4", Stage.REJECTED)]),  # the newer one is no longer on its way
        (JobStatus.RUNNING, [lifecycle("latest", Stage.PASSED)]),  # versions that are not numbers are not ordered
    ],
)
def test_testing_goes_on_when_no_newer_version_passed(status: JobStatus, others: list[Lifecycle]) -> None:
    assert machine.overtaken_in_testing(lifecycle("3"), job(status), others) is None
