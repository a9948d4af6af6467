"""Every transition of the rollout state machine, pure: no storage, no platform, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain import rollout as machine
from shared.domain.policy import HealthGates, MirrorPhase, RolloutPlan
from shared.domain.ports import Deployment, DeploymentMetrics, Endpoint
from shared.domain.records import Phase, Rollout, RolloutAction, RolloutState, Split
from shared.domain.rollout import Measure, Outcome, Retire, RolloutError, SetTraffic, Tell

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=61)
HEALTHY = DeploymentMetrics(requests=100, errors=0, latency_p95_ms=20)
FAILING = DeploymentMetrics(requests=100, errors=30)
QUIET = DeploymentMetrics(requests=2, errors=0)


def plan(**change: Any) -> RolloutPlan:
    return RolloutPlan(workspace="prod", endpoint="churn", steps=[10, 50, 100], bake_seconds=60,
                       gates=HealthGates(min_requests=10), retire_previous_after_seconds=300, **change)


def endpoint(traffic: dict[str, int] | None = None, mirror: dict[str, int] | None = None, green: str = "Succeeded",
             state: str = "Succeeded", deployments: tuple[str, ...] = ("blue", "green")) -> Endpoint:
    return Endpoint(workspace="prod", name="churn", provisioning_state=state,
                    traffic={"blue": 100} if traffic is None else traffic, mirror_traffic=mirror or {},
                    deployments=[Deployment(name=name, model_uri=f"azureml:churn:{name}",
                                            provisioning_state=green if name == "green" else "Succeeded")
                                 for name in deployments])


def rollout(the_plan: RolloutPlan | None = None, baseline: dict[str, int] | None = None, **change: Any) -> Rollout:
    """A rollout of `green` over `blue` (100 %), as `begin` makes it, then changed."""
    record = machine.begin("churn", the_plan or plan(), "churn", "3", "green",
                           endpoint({"blue": 100} if baseline is None else baseline), "test", NOW, "created").record
    return record.model_copy(update=change)


def at_step(step: int, **change: Any) -> Rollout:
    """At `step` of the plan, its traffic applied at NOW."""
    percent = plan().steps[step]
    traffic = {"blue": 100 - percent, "green": percent}
    return rollout(phase=Phase.STEP, step=step, step_started=NOW, target=Split(traffic=traffic), **change)


def live(record: Rollout) -> Endpoint:
    """The endpoint as the record's last traffic change left it."""
    target = record.target or Split(traffic={"blue": 100})
    return endpoint(target.traffic, target.mirror)


def traffic_of(move: machine.Move) -> list[dict[str, int]]:
    return [action.traffic for action in move.actions if isinstance(action, SetTraffic)]


def told(move: machine.Move) -> list[str]:
    return [action.kind for action in move.actions if isinstance(action, Tell)]


# begin and needs_endpoint --------------------------------------------------------------


def test_a_new_rollout_keeps_the_live_split_as_its_baseline_and_says_it_started() -> None:
    move = machine.begin("churn", plan(), "churn", "3", "green", endpoint({"blue": 100, "old": 0}, {"x": 0}),
                         "event-1", NOW, "created")
    record = move.record
    assert (record.state, record.phase, record.step) == (RolloutState.PROGRESSING, Phase.PROVISIONING, -1)
    assert record.baseline == Split(traffic={"blue": 100}, mirror={})
    assert record.key == "prod.churn" and record.id == "churn/green"
    assert told(move) == ["rollout.started"] and record.history[-1].action == "start"


@pytest.mark.parametrize(("record", "at", "needed"), [
    (rollout(), NOW, True),
    (rollout(state=RolloutState.ROLLING_BACK), NOW, True),
    (rollout(state=RolloutState.PAUSED), NOW, False),
    (rollout(state=RolloutState.AWAITING_APPROVAL), NOW, False),
    (rollout(state=RolloutState.ROLLED_BACK), NOW, False),
    (rollout(state=RolloutState.SUCCEEDED, retire_at=LATER), NOW, False),
    (rollout(state=RolloutState.SUCCEEDED, retire_at=NOW), LATER, True),
    (rollout(state=RolloutState.SUCCEEDED, retire_at=NOW, retired=True), LATER, False),
])
def test_a_tick_reads_the_endpoint_only_when_there_is_something_to_decide(record: Rollout, at: datetime,
                                                                          needed: bool) -> None:
    assert machine.needs_endpoint(record, at) is needed


# advance: waiting ------------------------------------------------------------------------


@pytest.mark.parametrize("state", [RolloutState.PAUSED, RolloutState.AWAITING_APPROVAL, RolloutState.ROLLED_BACK,
                                   RolloutState.FAILED])
def test_a_rollout_that_waits_for_a_person_or_has_ended_does_not_move(state: RolloutState) -> None:
    record = at_step(0, state=state)
    assert machine.advance(record, live(record), LATER, "timer") == machine.Move(record)


def test_nothing_is_decided_while_the_endpoint_is_updating() -> None:
    record = at_step(0)
    assert machine.advance(record, endpoint(state="Updating"), LATER, "timer").actions == []


def test_a_provisioning_deployment_is_waited_for() -> None:
    move = machine.advance(rollout(), endpoint(green="Creating"), NOW, "timer")
    assert move.actions == [] and move.record.phase is Phase.PROVISIONING


@pytest.mark.parametrize("green", ["Failed", "Canceled"])
def test_a_deployment_that_failed_to_provision_rolls_back_at_once(green: str) -> None:
    move = machine.advance(rollout(), endpoint(green=green), NOW, "timer")
    assert move.record.state is RolloutState.ROLLING_BACK
    assert move.record.rollback_reason == f"deployment green is missing or failed to provision ({green})"
    assert traffic_of(move) == [{"blue": 100}]


def test_a_deployment_gone_from_the_endpoint_rolls_back() -> None:
    move = machine.advance(rollout(), endpoint(deployments=("blue",)), NOW, "timer")
    assert move.record.state is RolloutState.ROLLING_BACK and "(missing)" in move.record.rollback_reason


def test_a_traffic_change_that_did_not_take_is_applied_again() -> None:
    record = at_step(1)
    move = machine.advance(record, endpoint({"blue": 90, "green": 10}), LATER, "timer")
    assert traffic_of(move) == [{"blue": 50, "green": 50}] and move.record.step == 1


def test_the_bake_time_is_waited_out_before_any_analysis() -> None:
    record = at_step(0)
    assert machine.advance(record, live(record), NOW + timedelta(seconds=59), "timer").actions == []


def test_after_the_bake_time_the_machine_asks_for_the_metrics_since_the_step_began() -> None:
    record = at_step(0)
    assert machine.advance(record, live(record), LATER, "timer").actions == [Measure(NOW)]


# advance: phases and steps ---------------------------------------------------------------


def test_a_provisioned_deployment_takes_the_first_step_and_ops_are_told() -> None:
    move = machine.advance(rollout(), endpoint(), NOW, "timer")
    assert (move.record.phase, move.record.step, move.record.step_started) == (Phase.STEP, 0, NOW)
    assert traffic_of(move) == [{"blue": 90, "green": 10}]
    assert told(move) == ["rollout.step"]


def test_with_a_mirror_phase_the_deployment_first_gets_mirrored_traffic_only() -> None:
    record = rollout(plan(mirror=MirrorPhase(percent=20, bake_seconds=30)))
    move = machine.advance(record, endpoint(), NOW, "timer")
    assert move.record.phase is Phase.MIRROR
    assert move.actions == [SetTraffic({"blue": 100}, {"green": 20})]


def test_the_mirror_phase_bakes_for_its_own_time_then_the_first_step_follows() -> None:
    record = rollout(plan(mirror=MirrorPhase(percent=20, bake_seconds=30)), phase=Phase.MIRROR, step_started=NOW,
                     target=Split(traffic={"blue": 100}, mirror={"green": 20}))
    after = NOW + timedelta(seconds=31)
    assert machine.advance(record, live(record), after, "timer").actions == [Measure(NOW)]
    move = machine.advance(record, live(record), after, "timer", HEALTHY)
    assert (move.record.phase, move.record.step) == (Phase.STEP, 0)
    assert traffic_of(move) == [{"blue": 90, "green": 10}]


def test_on_an_empty_endpoint_the_first_deployment_takes_everything_without_analysis() -> None:
    record = rollout(baseline={})
    move = machine.advance(record, endpoint({}), NOW, "timer")
    assert move.record.skip_analysis and move.record.step == 2 and traffic_of(move) == [{"green": 100}]
    finished = machine.advance(move.record, live(move.record), NOW, "timer")
    assert finished.record.state is RolloutState.SUCCEEDED and told(finished) == ["rollout.completed"]


def test_a_passing_step_moves_to_the_next_one() -> None:
    record = at_step(0)
    move = machine.advance(record, live(record), LATER, "timer", HEALTHY)
    assert move.record.step == 1 and traffic_of(move) == [{"blue": 50, "green": 50}]
    assert [entry.action for entry in move.record.history[-2:]] == ["analysis:pass", "step"]
    assert move.record.history[-2].metrics == {"requests": 100.0, "errors": 0.0, "error_rate": 0.0,
                                               "latency_p95_ms": 20, "latency_p99_ms": None}


def test_a_manual_gate_waits_for_approval_and_tells_ops_what_to_do() -> None:
    record = at_step(0, plan=plan(manual_gates=[50]))
    move = machine.advance(record, live(record), LATER, "timer", HEALTHY)
    assert move.record.state is RolloutState.AWAITING_APPROVAL and move.record.step == 0
    assert traffic_of(move) == []
    [tell] = [action for action in move.actions if isinstance(action, Tell)]
    assert tell.kind == "rollout.awaiting_approval" and tell.severity == "warning"
    assert "opsctl approve prod churn" in tell.summary and "/api/ops/rollouts/prod/churn/approve" in tell.summary


def test_an_approved_gate_is_passed_on_the_next_tick() -> None:
    record = at_step(0, plan=plan(manual_gates=[50]), approved=[50])
    move = machine.advance(record, live(record), LATER, "timer", HEALTHY)
    assert move.record.state is RolloutState.PROGRESSING and move.record.step == 1


def test_the_last_step_passing_finishes_the_rollout_with_a_retirement_date() -> None:
    record = at_step(2)
    move = machine.advance(record, live(record), LATER, "timer", HEALTHY)
    assert move.record.state is RolloutState.SUCCEEDED and move.record.finished == LATER
    assert move.record.retire_at == LATER + timedelta(seconds=300) and move.record.target is None
    assert told(move) == ["rollout.completed"]


# advance: analyses that do not pass ---------------------------------------------------------


def test_a_failed_analysis_under_the_limit_starts_the_step_s_bake_again() -> None:
    record = at_step(1, plan=plan(failure_limit=2))
    move = machine.advance(record, live(record), LATER, "timer", FAILING)
    assert (move.record.state, move.record.failures, move.record.step_started) == (
        RolloutState.PROGRESSING, 1, LATER)
    assert move.actions == []


def test_failed_analyses_at_the_limit_roll_back_with_what_was_observed() -> None:
    record = at_step(1)
    move = machine.advance(record, live(record), LATER, "timer", FAILING)
    assert move.record.state is RolloutState.ROLLING_BACK and "error rate 30.0% > 1.0%" in move.record.rollback_reason
    assert move.record.rollback_metrics is not None and move.record.rollback_metrics["error_rate"] == 0.3
    assert traffic_of(move) == [{"blue": 100}]


def test_an_inconclusive_analysis_waits_and_too_many_roll_back_when_the_policy_says_so() -> None:
    record = at_step(1, plan=plan(inconclusive_limit=2, on_no_evidence="roll_back"))
    once = machine.advance(record, live(record), LATER, "timer", QUIET)
    assert (once.record.state, once.record.inconclusive, once.actions) == (RolloutState.PROGRESSING, 1, [])
    twice = machine.advance(once.record, live(once.record), LATER, "timer", QUIET)
    assert twice.record.state is RolloutState.ROLLING_BACK
    assert twice.record.rollback_reason.startswith("inconclusive too long: only 2 requests")


def test_too_little_evidence_holds_by_default_tells_ops_once_and_says_what_it_needs() -> None:
    record = at_step(1, plan=plan(inconclusive_limit=2))
    once = machine.advance(record, live(record), LATER, "timer", QUIET)
    closeness = once.record.analysis.closeness if once.record.analysis else None
    assert closeness is not None and closeness.text == "inconclusive 1 of 2: holds after 2; needs about 8 more requests"
    twice = machine.advance(once.record, live(once.record), LATER, "timer", QUIET)
    assert twice.record.state is RolloutState.PROGRESSING and told(twice) == ["rollout.holding"]
    [tell] = twice.actions
    assert isinstance(tell, Tell) and tell.severity == "warning" and ("rollback", (
        "inconclusive 2 of 2: holds, ops told (the policy does not roll back for lack of evidence); "
        "needs about 8 more requests")) in tell.facts
    thrice = machine.advance(twice.record, live(twice.record), LATER, "timer", QUIET)
    assert (thrice.record.state, thrice.record.inconclusive, thrice.actions) == (RolloutState.PROGRESSING, 3, [])
    assert thrice.record.history[-1].analysis is not None, "each analysis entry keeps its table"


def test_a_rollback_that_the_endpoint_was_too_busy_for_is_applied_again() -> None:
    record = at_step(1, state=RolloutState.ROLLING_BACK)
    assert machine.advance(record, live(record), LATER, "timer").actions == [SetTraffic({"blue": 100}, {})]


# applied: what a traffic change's outcome means ------------------------------------------------


def rolling_back() -> Rollout:
    """Rolling back from the second step, as its failed analysis left it."""
    record = at_step(1)
    return machine.advance(record, live(record), LATER, "timer", FAILING).record


def test_a_restored_split_ends_the_rollback_and_ops_hear_why_with_the_metrics() -> None:
    move = machine.applied(rolling_back(), Outcome.APPLIED, "", LATER, "timer")
    assert move.record.state is RolloutState.ROLLED_BACK and move.record.finished == LATER
    [tell] = move.actions
    assert isinstance(tell, Tell) and tell.kind == "rollout.rolled_back" and tell.severity == "error"
    assert tell.summary == "error rate 30.0% > 1.0%"
    assert tell.facts == (("requests", "100"), ("errors", "30"), ("error_rate", "0.3"), ("latency_p95_ms", "-"),
                          ("latency_p99_ms", "-"), ("rollback", "failures 1 of 1: rolls back"))


def test_a_rollback_the_endpoint_is_too_busy_for_stays_pending() -> None:
    move = machine.applied(rolling_back(), Outcome.BUSY, "updating", LATER, "timer")
    assert move.record.state is RolloutState.ROLLING_BACK and move.record.history[-1].action == "rollback-pending"


def test_a_restore_the_platform_refuses_fails_the_rollout_and_ops_are_told() -> None:
    move = machine.applied(rolling_back(), Outcome.REFUSED, "invalid traffic", LATER, "timer")
    assert move.record.state is RolloutState.FAILED
    assert told(move) == ["rollout.failed"] and "invalid traffic" in move.record.history[-1].reason


def test_a_step_the_platform_refuses_rolls_back() -> None:
    move = machine.applied(at_step(1), Outcome.REFUSED, "mirror above 50", LATER, "timer")
    assert move.record.state is RolloutState.ROLLING_BACK
    assert move.record.rollback_reason == "the platform refused a traffic change: mirror above 50"


@pytest.mark.parametrize("outcome", [Outcome.APPLIED, Outcome.BUSY])
def test_a_step_applied_or_deferred_changes_nothing(outcome: Outcome) -> None:
    record = at_step(1)
    assert machine.applied(record, outcome, "", LATER, "timer") == machine.Move(record)


# retire ---------------------------------------------------------------------------------------


def succeeded(**change: Any) -> Rollout:
    return rollout(state=RolloutState.SUCCEEDED, phase=Phase.STEP, step=2, retire_at=LATER, **change)


def test_previous_deployments_without_traffic_are_retired_after_the_grace_period() -> None:
    record = succeeded()
    assert machine.advance(record, endpoint({"green": 100}), NOW, "timer").actions == []
    move = machine.advance(record, endpoint({"green": 100}), LATER, "timer")
    assert move.actions == [Retire(("blue",))] and move.record.retired


def test_a_previous_deployment_given_traffic_again_is_kept() -> None:
    move = machine.retire(succeeded(), endpoint({"green": 90, "blue": 10}), LATER, "timer")
    assert move.actions == [Retire(())] and move.record.retired


def test_retirement_waits_for_a_busy_endpoint_and_happens_once() -> None:
    assert machine.retire(succeeded(), endpoint({"green": 100}, state="Updating"), LATER, "timer").actions == []
    assert machine.retire(succeeded(retired=True), endpoint({"green": 100}), LATER, "timer").actions == []


@pytest.mark.parametrize(("record", "named"), [
    (succeeded(), "succeeded"), (succeeded(retired=True), "retired"), (at_step(0), "progressing"),
    (at_step(0, state=RolloutState.ROLLED_BACK, retired=True), "rolled_back"),
])
def test_a_succeeded_rollout_whose_previous_deployments_are_gone_is_named_retired(record: Rollout, named: str) -> None:
    assert machine.state_of(record) == named


def test_a_new_rollout_ends_the_grace_period_at_once() -> None:
    move = machine.retire(succeeded(), endpoint({"green": 100}), NOW, "event", grace=False)
    assert move.actions == [Retire(("blue",))]


# act: what admins may do --------------------------------------------------------------------


@pytest.mark.parametrize("state", [RolloutState.PROGRESSING, RolloutState.AWAITING_APPROVAL])
def test_pause_stops_an_active_rollout(state: RolloutState) -> None:
    move = machine.act(at_step(0, state=state), RolloutAction.PAUSE, "ada", "error budget", NOW)
    assert move.record.state is RolloutState.PAUSED and move.record.history[-1].actor == "ada"


def test_resume_restarts_the_step_s_bake_time() -> None:
    move = machine.act(at_step(0, state=RolloutState.PAUSED), RolloutAction.RESUME, "ada", "ok", LATER)
    assert (move.record.state, move.record.step_started, move.record.target) == (
        RolloutState.PROGRESSING, LATER, None)


def test_approve_lets_the_waiting_step_through() -> None:
    record = at_step(0, plan=plan(manual_gates=[50]), state=RolloutState.AWAITING_APPROVAL)
    move = machine.act(record, RolloutAction.APPROVE, "ada", "looks good", NOW)
    assert move.record.state is RolloutState.PROGRESSING and move.record.approved == [50]


def test_promote_goes_one_step_and_its_analysis_still_runs() -> None:
    move = machine.act(at_step(0), RolloutAction.PROMOTE, "ada", "", NOW)
    assert (move.record.step, move.record.skip_analysis) == (1, False)
    assert traffic_of(move) == [{"blue": 50, "green": 50}]


def test_promote_past_a_manual_gate_approves_it() -> None:
    record = at_step(0, plan=plan(manual_gates=[50]), state=RolloutState.AWAITING_APPROVAL)
    move = machine.act(record, RolloutAction.PROMOTE, "ada", "", NOW)
    assert move.record.state is RolloutState.PROGRESSING and move.record.approved == [50] and move.record.step == 1


def test_promote_from_the_mirror_phase_goes_to_the_first_step() -> None:
    record = rollout(plan(mirror=MirrorPhase(percent=20)), phase=Phase.MIRROR, step_started=NOW)
    assert traffic_of(machine.act(record, RolloutAction.PROMOTE, "ada", "", NOW)) == [{"blue": 90, "green": 10}]


def test_promote_at_the_last_step_finishes_without_its_analysis() -> None:
    move = machine.act(at_step(2), RolloutAction.PROMOTE, "ada", "", NOW)
    assert move.record.skip_analysis and move.actions == []


def test_promote_full_skips_every_step_and_analysis_left() -> None:
    move = machine.act(at_step(0, state=RolloutState.PAUSED), RolloutAction.PROMOTE, "ada", "hotfix", NOW, full=True)
    assert (move.record.step, move.record.skip_analysis, move.record.state) == (2, True, RolloutState.PROGRESSING)
    assert traffic_of(move) == [{"blue": 0, "green": 100}] and move.record.history[-1].action == "promote-full"


def test_promote_while_the_deployment_provisions_is_refused() -> None:
    with pytest.raises(RolloutError, match="still provisioning"):
        machine.act(rollout(), RolloutAction.PROMOTE, "ada", "", NOW, full=True)


@pytest.mark.parametrize("state", [RolloutState.PROGRESSING, RolloutState.PAUSED, RolloutState.AWAITING_APPROVAL])
def test_abort_rolls_back(state: RolloutState) -> None:
    move = machine.act(at_step(1, state=state), RolloutAction.ABORT, "ada", "bad", NOW)
    assert move.record.state is RolloutState.ROLLING_BACK and traffic_of(move) == [{"blue": 100}]
    assert move.record.rollback_reason == "bad" and move.record.history[-1].action == "abort"


def test_undo_rolls_a_succeeded_rollout_back_until_its_predecessors_are_retired() -> None:
    move = machine.act(succeeded(), RolloutAction.UNDO, "ada", "complaints", NOW)
    assert move.record.state is RolloutState.ROLLING_BACK and move.record.rollback_reason == "complaints"
    with pytest.raises(RolloutError, match="already retired"):
        machine.act(succeeded(retired=True), RolloutAction.UNDO, "ada", "", NOW)


@pytest.mark.parametrize(("state", "action"), [
    (RolloutState.PAUSED, RolloutAction.PAUSE),
    (RolloutState.PROGRESSING, RolloutAction.RESUME),
    (RolloutState.PROGRESSING, RolloutAction.APPROVE),
    (RolloutState.SUCCEEDED, RolloutAction.PROMOTE),
    (RolloutState.ROLLED_BACK, RolloutAction.ABORT),
    (RolloutState.PROGRESSING, RolloutAction.UNDO),
])
def test_an_action_that_does_not_fit_the_state_is_refused_naming_both(state: RolloutState,
                                                                      action: RolloutAction) -> None:
    with pytest.raises(RolloutError, match=f"cannot {action.value} a rollout that is {state.value}"):
        machine.act(at_step(0, state=state), action, "ada", "", NOW)


@pytest.mark.parametrize("state", [RolloutState.PROGRESSING, RolloutState.AWAITING_APPROVAL])
def test_a_traffic_change_by_hand_pauses_an_active_rollout_only(state: RolloutState) -> None:
    paused = machine.paused_by_hand(at_step(0, state=state), {"blue": 100}, {}, "ada", NOW).record
    assert paused.state is RolloutState.PAUSED and paused.target is None
    assert machine.paused_by_hand(paused, {"blue": 90}, {}, "ada", NOW).record == paused
    done = succeeded()
    assert machine.paused_by_hand(done, {"blue": 100}, {}, "ada", NOW).record == done
