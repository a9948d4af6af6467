"""The rollout state machine, pure: (record, what the platform shows, now) -> (next record, actions).

Nothing here does I/O. `shared.reactor.rollout` reads the endpoint (and, when a move asks with
`Measure`, the deployment's metrics), calls these functions, carries out the actions they return
and stores the record. A traffic change's outcome comes back through `applied`, so even a refusal
or a busy endpoint is a transition of this machine, tested like every other.

    progressing -> progressing (its phases: provisioning, mirror if the plan has one, then step by step)
    progressing -> awaiting_approval (the next step is a manual gate) -> progressing (approve, promote)
    progressing | awaiting_approval -> paused (pause, or traffic set by hand) -> progressing (resume, promote)
    progressing -> succeeded (the last step passed its analysis, or needs none) -> retired (the grace
        period for an undo is over, or the endpoint's next rollout starts: the previous deployments deleted)
    progressing -> rolling_back (the deployment failed, analyses failed, or were inconclusive too often
        and the policy says `on_no_evidence: roll_back`, the platform refused a step);
        progressing | paused | awaiting_approval -> rolling_back (abort)
    succeeded -> rolling_back (undo, before retirement)
    rolling_back -> rolled_back (the baseline's traffic restored) | failed (the platform refused the restore)

`retired` is a succeeded rollout whose previous deployments are gone (`state_of`). `TRANSITIONS` is the
same as a table, each move with the function that makes it; a unit test checks that the unit tests drive
every entry and no move outside it (`tests/unit/test_transitions.py`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from shared.domain import shadow
from shared.domain.analysis import Analysis, Closeness, judge_step, split
from shared.domain.notification import Kind, Severity, Table
from shared.domain.policy import RolloutPlan
from shared.domain.ports import DeploymentMetrics, Endpoint
from shared.domain.records import HistoryAction, Phase, Rollout, RolloutAction, RolloutEntry, RolloutState, Split
from shared.domain.shadow import ShadowComparison
from shared.domain.transitions import Transition

State = RolloutState
RETIRED: Final = "retired"

TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition(State.PROGRESSING, State.PROGRESSING, "advance",
               "the next phase or step, a change applied again, metrics asked for, an analysis not passed yet, "
               "a step holding for lack of evidence (ops told once)"),
    Transition(State.PROGRESSING, State.AWAITING_APPROVAL, "advance", "the next step is a manual gate"),
    Transition(State.PROGRESSING, State.SUCCEEDED, "advance", "the last step passed its analysis (or needs none)"),
    Transition(State.PROGRESSING, State.ROLLING_BACK, "advance",
               "the deployment failed, analyses failed, or were inconclusive too often (on_no_evidence: roll_back)"),
    Transition(State.PROGRESSING, State.ROLLING_BACK, "applied", "the platform refused a step's traffic"),
    Transition(State.ROLLING_BACK, State.ROLLING_BACK, "advance", "the restore asked for again"),
    Transition(State.ROLLING_BACK, State.ROLLING_BACK, "applied", "the endpoint was busy: the next tick restores"),
    Transition(State.ROLLING_BACK, State.ROLLED_BACK, "applied", "the baseline's traffic is restored"),
    Transition(State.ROLLING_BACK, State.FAILED, "applied", "the platform refused the restore"),
    Transition(State.SUCCEEDED, RETIRED, "advance", "the grace period for an undo is over"),
    Transition(State.SUCCEEDED, RETIRED, "retire", "the endpoint's next rollout starts"),
    Transition(State.PROGRESSING, State.PAUSED, "paused_by_hand", "an admin set the endpoint's traffic"),
    Transition(State.AWAITING_APPROVAL, State.PAUSED, "paused_by_hand", "an admin set the endpoint's traffic"),
    Transition(State.PROGRESSING, State.PAUSED, "act:pause", "an admin paused it"),
    Transition(State.AWAITING_APPROVAL, State.PAUSED, "act:pause", "an admin paused it"),
    Transition(State.PAUSED, State.PROGRESSING, "act:resume", "an admin resumed it: the step bakes again"),
    Transition(State.AWAITING_APPROVAL, State.PROGRESSING, "act:approve", "an admin let the gated step through"),
    Transition(State.PROGRESSING, State.PROGRESSING, "act:promote", "an admin promoted it a step, or to 100 %"),
    Transition(State.PAUSED, State.PROGRESSING, "act:promote", "an admin promoted it a step, or to 100 %"),
    Transition(State.AWAITING_APPROVAL, State.PROGRESSING, "act:promote", "promoting past a gate approves it"),
    Transition(State.PROGRESSING, State.ROLLING_BACK, "act:abort", "an admin aborted it"),
    Transition(State.PAUSED, State.ROLLING_BACK, "act:abort", "an admin aborted it"),
    Transition(State.AWAITING_APPROVAL, State.ROLLING_BACK, "act:abort", "an admin aborted it"),
    Transition(State.SUCCEEDED, State.ROLLING_BACK, "act:undo", "an admin undid it before retirement"),
)


class RolloutError(ValueError):
    """The requested action does not fit the rollout's state (HTTP 409)."""


@dataclass(frozen=True)
class SetTraffic:
    """Change the endpoint's traffic; its outcome comes back through `applied`."""

    traffic: dict[str, int]
    mirror: dict[str, int]


@dataclass(frozen=True)
class Measure:
    """The analysis needs the deployment's metrics since `since` (and its champion's, over the same
    minutes, when `champion` is named; `metrics` are the series to read): call `advance` again with them."""

    since: datetime
    champion: str | None = None
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tell:
    """Tell ops (one notification per kind, endpoint, deployment and suffix)."""

    kind: Kind
    title: str
    summary: str = ""
    severity: Severity = "info"
    facts: tuple[tuple[str, str], ...] = ()
    suffix: str = ""
    table: Table | None = None


@dataclass(frozen=True)
class Retire:
    """Delete the deployments the rollout replaced (a missing one is fine)."""

    deployments: tuple[str, ...]


Action = SetTraffic | Measure | Tell | Retire


@dataclass
class Move:
    record: Rollout
    actions: list[Action] = field(default_factory=list)


class Outcome(enum.Enum):
    """What became of a `SetTraffic`."""

    APPLIED = "applied"
    BUSY = "busy"  # the endpoint is busy: the next tick applies it again
    REFUSED = "refused"  # the platform refused it for good


def key_for(workspace: str, endpoint: str) -> str:
    return f"{workspace}.{endpoint}"


def state_of(record: Rollout) -> str:
    """The rollout's state as `TRANSITIONS` names it: `retired` once a succeeded rollout's previous
    deployments are deleted (no undo is left), its `state` otherwise."""
    return RETIRED if record.state is State.SUCCEEDED and record.retired else record.state.value


def begin(rule: str, plan: RolloutPlan, model: str, version: str, deployment: str, endpoint: Endpoint,
          actor: str, now: datetime, reason: str) -> Move:
    """The record of a new rollout (its deployment was just created): provisioning, the endpoint's
    current split kept as the baseline to compare with and roll back to."""
    traffic, mirror = Split(traffic=endpoint.traffic, mirror=endpoint.mirror_traffic).live()
    record = Rollout(
        id=f"{plan.endpoint}/{deployment}", key=key_for(plan.workspace, plan.endpoint), workspace=plan.workspace,
        endpoint=plan.endpoint, deployment=deployment, rule=rule, model=model, version=version, plan=plan,
        baseline=Split(traffic=traffic, mirror=mirror), state=State.PROGRESSING, phase=Phase.PROVISIONING,
        started=now,
    )
    _log(record, HistoryAction.START, actor, reason, now)
    mirrored = f", mirror {plan.mirror.percent}% first" if plan.mirror else ""
    return Move(record, [Tell("rollout.started", f"Rollout of {model} v{version} started",
                              f"steps {plan.steps} on {plan.endpoint}{mirrored}")])


def needs_endpoint(record: Rollout, now: datetime) -> bool:
    """Whether a tick has anything to decide, so is worth reading the endpoint for."""
    if record.state is State.SUCCEEDED:
        return not record.retired and record.retire_at is not None and now >= record.retire_at
    return record.state in (State.PROGRESSING, State.ROLLING_BACK)


def advance(record: Rollout, endpoint: Endpoint, now: datetime, actor: str,
            metrics: DeploymentMetrics | None = None, champion: DeploymentMetrics | None = None,
            predictions: ShadowComparison | None = None) -> Move:
    """One tick's decision: wait (bake time, endpoint busy, deployment provisioning), apply again a
    change that did not take, start the next phase or step, finish, or roll back. In a mirror phase whose
    plan compares predictions, `predictions` (the shadow's against the champion's) is judged with the metrics:
    a shadow that disagrees beyond the gate fails its analysis and never takes live traffic."""
    r = record.model_copy(deep=True)
    if r.state is State.SUCCEEDED:
        return retire(r, endpoint, now, actor)
    if r.state not in (State.PROGRESSING, State.ROLLING_BACK) or endpoint.is_updating:
        return Move(r)
    if r.state is State.ROLLING_BACK:
        return Move(r, [SetTraffic(r.baseline.traffic, r.baseline.mirror)])
    deployment = next((d for d in endpoint.deployments if d.name == r.deployment), None)
    if deployment is None or deployment.has_failed:  # Failed or Canceled: waiting will not make it succeed
        found = deployment.provisioning_state if deployment else "missing"
        return _rollback(r, now, actor, f"deployment {r.deployment} is missing or failed to provision ({found})")
    if deployment.provisioning_state.lower() != "succeeded":
        return Move(r)
    live = Split(traffic=endpoint.traffic, mirror=endpoint.mirror_traffic).live()
    if r.target and live != r.target.live():
        return Move(r, [SetTraffic(r.target.traffic, r.target.mirror)])  # the change did not take: again
    if r.phase is Phase.PROVISIONING:
        return _next_phase(r, now, actor)
    if r.skip_analysis:
        first = not any(r.baseline.traffic.values())
        return _finish(r, now, actor, "first deployment on an empty endpoint: live without analysis" if first
                       else "promoted without analysis")
    plan = r.plan
    bake = plan.mirror.bake_seconds if r.phase is Phase.MIRROR and plan.mirror else plan.bake_seconds
    started = r.step_started or now
    if now - started < timedelta(seconds=bake):
        return Move(r)
    compared = champion_of(r) if plan.compare else None
    if compared is not None and not _shares(r, compared)[1]:
        compared = None  # the champion serves nothing (the last step): the absolute gates alone judge it
    if metrics is None:
        names = tuple(dict.fromkeys(m.metric for m in plan.compare.metrics)) if plan.compare else ()
        return Move(r, [Measure(started, compared, names)])
    verdict = judge_step(metrics, plan, champion if compared else None, compared or "", _shares(r, compared))
    if r.phase is Phase.MIRROR and plan.mirror and plan.mirror.predictions:
        verdict = shadow.judged(verdict, predictions)
    reasons = "; ".join(verdict.reasons)
    if verdict.result == "fail":
        r.failures += 1
        verdict.closeness = Closeness(counter="failures", count=r.failures, limit=plan.failure_limit, rolls_back=True)
    elif verdict.result == "inconclusive":
        r.inconclusive += 1
        verdict.closeness = Closeness(counter="inconclusive", count=r.inconclusive, limit=plan.inconclusive_limit,
                                      rolls_back=plan.on_no_evidence == "roll_back",
                                      needs_requests=verdict.needs_requests, needs_minutes=verdict.needs_minutes)
    r.analysis = verdict
    _log(r, HistoryAction.analysis(verdict.result), actor, reasons, now, metrics=verdict.observed,
         analysis=verdict.summary())
    if verdict.result == "fail":
        if r.failures >= plan.failure_limit:
            return _rollback(r, now, actor, reasons, verdict.observed)
        r.step_started = now
        return Move(r)
    if verdict.result == "inconclusive":
        if r.inconclusive >= plan.inconclusive_limit and plan.on_no_evidence == "roll_back":
            return _rollback(r, now, actor, "inconclusive too long: " + reasons, verdict.observed)
        if r.inconclusive == plan.inconclusive_limit:  # holds: ops told once per step
            return Move(r, [_holding(r, verdict)])
        return Move(r)
    if r.phase is Phase.STEP and r.percent == 100:
        return _finish(r, now, actor, reasons)
    return _next_phase(r, now, actor)


def champion_of(record: Rollout) -> str | None:
    """The deployment the canary is compared with: the one that served most of the traffic before."""
    others = {name: share for name, share in record.baseline.traffic.items() if name != record.deployment and share}
    return max(others, key=lambda name: others[name]) if others else None


def _shares(r: Rollout, champion: str | None) -> tuple[float, float]:
    """The canary's and the champion's parts of the live traffic now (a mirror's copies count as its part)."""
    target = r.target or r.baseline
    canary = target.traffic.get(r.deployment) or target.mirror.get(r.deployment) or 0
    return canary / 100, (target.traffic.get(champion, 0) / 100 if champion else 0.0)


def analysis_table(analysis: Analysis) -> Table | None:
    """The comparison as a notification's table: one row per metric (Kayenta's report, in short)."""
    if analysis.comparison is None:
        return None
    rows = []
    for line in analysis.comparison.metrics:
        bounds = "-" if line.ratio_low is None or line.ratio_high is None else \
            f"{line.ratio_low:.2f}-{line.ratio_high:.2f}"
        rows.append((line.label, line.classification, _number(line.canary), _number(line.champion),
                     "-" if line.ratio is None else f"{line.ratio:.2f}x", bounds, f"{line.tolerance:.0%}",
                     f"{line.weight:g}"))
    return Table(header=("metric", "class", "canary", "champion", "ratio", "bounds", "tolerance", "weight"),
                 rows=tuple(rows))


def analysis_facts(analysis: Analysis) -> tuple[tuple[str, str], ...]:
    """The comparison's score and how close a rollback is, as notification facts."""
    facts: list[tuple[str, str]] = []
    if analysis.comparison is not None:
        judged = analysis.comparison
        score = "-" if judged.score is None else f"{judged.score:.0f}"
        facts.append(("comparison", f"{judged.verdict}, score {score} against {judged.champion} over "
                                    f"{judged.minutes} min (false-rollback rate {judged.alpha:.2%} this phase)"))
    if analysis.closeness is not None:
        facts.append(("rollback", analysis.closeness.text))
    return tuple(facts)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _holding(r: Rollout, verdict: Analysis) -> Tell:
    needs = verdict.closeness.text if verdict.closeness else ""
    return Tell("rollout.holding", f"Rollout of {r.model} v{r.version} holds at {r.percent}%: not enough evidence",
                f"{r.inconclusive} analyses could not decide; the step holds and keeps judging ({needs}). "
                f"Promote or abort it by hand to decide now.", severity="warning", facts=analysis_facts(verdict),
                table=analysis_table(verdict), suffix=f"{r.step}")


def applied(record: Rollout, outcome: Outcome, detail: str, now: datetime, actor: str) -> Move:
    """What a traffic change's outcome means: a restore that took ends the rollback; a refused
    step rolls back; a refused restore fails the rollout; a busy endpoint waits for the next tick."""
    r = record.model_copy(deep=True)
    if r.state is State.ROLLING_BACK:
        if outcome is Outcome.BUSY:
            _log(r, HistoryAction.ROLLBACK_PENDING, actor, "endpoint busy; the next tick restores the traffic", now)
            return Move(r)
        if outcome is Outcome.REFUSED:
            r.state, r.finished = State.FAILED, now
            reason = f"the platform refused to restore the traffic: {detail}"
            _log(r, HistoryAction.FAILED, actor, reason, now)
            return Move(r, [Tell("rollout.failed", f"Rollout of {r.model} v{r.version} failed", reason,
                                 severity="error")])
        r.state, r.target, r.finished = State.ROLLED_BACK, None, now
        _log(r, HistoryAction.ROLLED_BACK, actor, r.rollback_reason, now, metrics=r.rollback_metrics)
        facts = tuple((name, "-" if value is None else f"{value:.4g}")
                      for name, value in (r.rollback_metrics or {}).items())
        judged = r.analysis if r.analysis is not None and r.analysis.result != "pass" else None
        facts += analysis_facts(judged) if judged else ()
        return Move(r, [Tell("rollout.rolled_back", f"Rollout of {r.model} v{r.version} rolled back",
                             r.rollback_reason, severity="error", facts=facts,
                             table=analysis_table(judged) if judged else None)])
    if outcome is Outcome.REFUSED:
        return _rollback(r, now, actor, f"the platform refused a traffic change: {detail}")
    return Move(r)


def _rollback(record: Rollout, now: datetime, actor: str, reason: str,
              observed: dict[str, Any] | None = None) -> Move:
    """Restore the traffic split from before the rollout; the new deployment stays for diagnosis. The
    step of `advance`, `applied` and `act` that rolls back: the I/O layer never calls it alone."""
    r = record.model_copy(deep=True)
    r.state, r.rollback_reason, r.rollback_metrics = State.ROLLING_BACK, reason, observed
    r.target = r.baseline.model_copy(deep=True)
    return Move(r, [SetTraffic(r.baseline.traffic, r.baseline.mirror)])


def retire(record: Rollout, endpoint: Endpoint, now: datetime, actor: str, grace: bool = True) -> Move:
    """After the grace period for an undo (or when the next rollout starts: grace=False), delete the
    deployments of the baseline that no longer take any traffic."""
    r = record.model_copy(deep=True)
    if r.retired or r.retire_at is None or (grace and now < r.retire_at) or endpoint.is_updating:
        return Move(r)
    names = tuple(name for name in r.baseline.traffic if name != r.deployment
                  and not endpoint.traffic.get(name) and not endpoint.mirror_traffic.get(name))
    r.retired = True
    said = f"previous deployments deleted: {', '.join(names)}" if names else "no previous deployment to delete"
    _log(r, HistoryAction.RETIRED, actor, said, now)
    return Move(r, [Retire(names)])


def paused_by_hand(record: Rollout, traffic: dict[str, int], mirror: dict[str, int], actor: str,
                   now: datetime) -> Move:
    """An admin set the endpoint's traffic: an active rollout is paused, not fought."""
    r = record.model_copy(deep=True)
    if r.state in (State.PROGRESSING, State.AWAITING_APPROVAL):
        r.state, r.target = State.PAUSED, None
        _log(r, HistoryAction.PAUSE, actor, f"manual traffic change to {traffic} (mirror {mirror})", now)
    return Move(r)


def act(record: Rollout, action: RolloutAction, actor: str, reason: str, now: datetime, full: bool = False) -> Move:
    """An admin action; RolloutError when it does not fit the rollout's state.

    `promote` goes one step (the next step's traffic now; its analysis still runs, as Argo's
    `promote`); with `full` it goes to 100 % and skips every analysis left (Argo's `promote --full`).
    """
    r = record.model_copy(deep=True)
    if action is RolloutAction.PAUSE:
        _require(r, action, State.PROGRESSING, State.AWAITING_APPROVAL)
        r.state = State.PAUSED
    elif action is RolloutAction.RESUME:
        _require(r, action, State.PAUSED)
        r.state, r.step_started, r.target = State.PROGRESSING, now, None
    elif action is RolloutAction.APPROVE:
        _require(r, action, State.AWAITING_APPROVAL)
        r.approved.append(r.plan.steps[r.step + 1])
        r.state = State.PROGRESSING
    elif action is RolloutAction.PROMOTE:
        _require(r, action, State.PROGRESSING, State.PAUSED, State.AWAITING_APPROVAL)
        if r.phase is Phase.PROVISIONING:
            raise RolloutError(f"cannot promote: deployment {r.deployment} is still provisioning and takes no "
                               "traffic yet")
        _log(r, HistoryAction.PROMOTE_FULL if full else HistoryAction.PROMOTE, actor, reason, now)
        return _promote(r, now, full)
    elif action is RolloutAction.ABORT:
        _require(r, action, State.PROGRESSING, State.PAUSED, State.AWAITING_APPROVAL)
        _log(r, HistoryAction.ABORT, actor, reason, now)
        return _rollback(r, now, actor, reason)
    else:
        _require(r, action, State.SUCCEEDED)
        if r.retired:
            raise RolloutError("the previous deployments are already retired; there is nothing to go back to")
        _log(r, HistoryAction.UNDO, actor, reason, now)
        return _rollback(r, now, actor, reason)
    _log(r, HistoryAction(action.value), actor, reason, now)
    return Move(r)


def _promote(r: Rollout, now: datetime, full: bool) -> Move:
    r.state, r.failures, r.inconclusive = State.PROGRESSING, 0, 0
    last = len(r.plan.steps) - 1
    if full or (r.phase is Phase.STEP and r.step == last):
        r.skip_analysis = True  # the next tick finishes once the traffic took
        if r.phase is Phase.STEP and r.step == last:
            return Move(r)
    step = last if full else (0 if r.phase is Phase.MIRROR else r.step + 1)
    percent = r.plan.steps[step]
    if percent in r.plan.manual_gates and percent not in r.approved:
        r.approved.append(percent)  # promoting past a manual gate is its approval
    r.phase, r.step = Phase.STEP, step
    return Move(r, [_apply(r, split(r.baseline.traffic, r.deployment, percent), {}, now)])


def _next_phase(r: Rollout, now: datetime, actor: str) -> Move:
    plan, baseline = r.plan, r.baseline
    if r.phase is Phase.PROVISIONING and plan.mirror and any(baseline.traffic.values()):
        r.phase = Phase.MIRROR
        action = _apply(r, baseline.traffic, {r.deployment: plan.mirror.percent}, now)
        _log(r, HistoryAction.MIRROR, actor, f"mirror {plan.mirror.percent}% to {r.deployment}", now)
        return Move(r, [action])
    if not any(baseline.traffic.values()):
        # As Flagger does for a first deployment: nothing to compare with or roll back to.
        r.phase, r.step, r.skip_analysis = Phase.STEP, len(plan.steps) - 1, True
        action = _apply(r, {r.deployment: 100}, {}, now)
        _log(r, HistoryAction.STEP, actor, "first deployment on an empty endpoint: 100% without analysis", now)
        return Move(r, [action])
    step = r.step + 1
    percent = plan.steps[step]
    if percent in plan.manual_gates and percent not in r.approved:
        r.state = State.AWAITING_APPROVAL
        _log(r, HistoryAction.AWAITING_APPROVAL, actor, f"step {percent}% waits for approval", now)
        where = f"{r.workspace} {r.endpoint}"
        return Move(r, [Tell(
            "rollout.awaiting_approval", f"Rollout of {r.model} v{r.version} waits for approval at {percent}%",
            f"{r.deployment} takes {r.percent}% of {r.endpoint} now. Approve with `opsctl approve {where}` "
            f"(POST /api/ops/rollouts/{r.workspace}/{r.endpoint}/approve), or abort with `opsctl abort {where}`.",
            severity="warning", facts=(("endpoint", f"{r.workspace}/{r.endpoint}"), ("next step", f"{percent}%"),
                                       ("since", now.isoformat(timespec="seconds"))),
            suffix=str(percent),
        )])
    r.phase, r.step, r.failures, r.inconclusive = Phase.STEP, step, 0, 0
    action = _apply(r, split(baseline.traffic, r.deployment, percent), {}, now)
    _log(r, HistoryAction.STEP, actor, f"{percent}% of traffic to {r.deployment}", now)
    actions: list[Action] = [action]
    if percent == 100 or step == 0:
        actions.append(Tell("rollout.step", f"{r.deployment} takes {percent}% of {r.endpoint}", suffix=str(percent)))
    return Move(r, actions)


def _finish(r: Rollout, now: datetime, actor: str, reason: str) -> Move:
    r.state, r.target, r.finished = State.SUCCEEDED, None, now
    r.retire_at = now + timedelta(seconds=r.plan.retire_previous_after_seconds)
    _log(r, HistoryAction.SUCCEEDED, actor, reason, now)
    return Move(r, [Tell("rollout.completed", f"{r.model} v{r.version} is live", reason)])


def _apply(r: Rollout, traffic: dict[str, int], mirror: dict[str, int], now: datetime) -> SetTraffic:
    """Ask for a traffic change; the bake time starts now, and the next tick verifies it took."""
    r.target = Split(traffic=traffic, mirror=mirror)
    r.step_started = now
    return SetTraffic(traffic, mirror)


def _require(r: Rollout, action: RolloutAction, *states: State) -> None:
    if r.state not in states:
        needs = " or ".join(state.value for state in states)
        raise RolloutError(f"cannot {action.value} a rollout that is {r.state.value} (needs {needs})")


def _log(r: Rollout, action: HistoryAction, actor: str, reason: str, now: datetime,
         metrics: dict[str, Any] | None = None, analysis: Analysis | None = None) -> None:
    target = r.target
    r.history.append(RolloutEntry(time=now, action=action, actor=actor, reason=reason,
                                  traffic=target.traffic if target else None,
                                  mirror=target.mirror if target else None, metrics=metrics, analysis=analysis))
