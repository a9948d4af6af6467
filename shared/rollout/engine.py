"""The rollout engine: one record per endpoint, advanced by ticks, never by sleeping.

Each tick holds the endpoint's lease (one writer), re-reads the endpoint, verifies the
last change took effect, then decides: wait (bake time, endpoint busy, deployment
provisioning, approval), advance a step, finish, or roll back. Admin actions take the
same lease, so a tick and an admin change never overwrite each other. The record keeps
every step with its metrics and who moved it, so a restarted app resumes where it was.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from shared import lifecycle
from shared.bootstrap import Services
from shared.decisions import deployment_name
from shared.notify import Notification
from shared.platform.port import NotFound, PlatformError, Transient, TryLater
from shared.policy import MAX_SECONDS, RolloutPlan, Rule
from shared.rollout.analysis import analyze, split
from shared.storage.state import Conflict, now

ACTIVE = ("progressing", "paused", "awaiting_approval", "rolling_back")
log = logging.getLogger(__name__)
Record = dict[str, Any]


class RolloutBusy(Exception):
    """Another rollout is active on the endpoint, or its lease is held right now."""


class RolloutError(ValueError):
    """The requested action does not fit the rollout's state (HTTP 409)."""


class Refused(Exception):
    """The platform refused a traffic change for good (invalid, not busy)."""


def _live(split: dict[str, int]) -> dict[str, int]:
    """The deployments that take a share; a 0 % entry may name one retired since."""
    return {name: share for name, share in split.items() if share}


def key_for(workspace: str, endpoint: str) -> str:
    return f"{workspace}.{endpoint}"


def start(services: Services, rule: Rule, model_record: dict[str, Any], cause: str) -> Record:
    """Create the new deployment and the rollout record; the ticks do the rest. Idempotent."""
    plan: RolloutPlan = rule.rollout  # type: ignore[assignment]
    key = key_for(plan.workspace, plan.endpoint)
    deployment = deployment_name(model_record["model"], model_record["version"])
    with holding(services, key):
        current = services.state.get("rollout", key)
        if current and current["deployment"] == deployment:
            return current
        if current and current["state"] in ACTIVE:
            raise RolloutBusy(f"rollout {current['id']} is still active on {plan.endpoint}")
        if current:
            if current["state"] == "succeeded":
                with contextlib.suppress(TryLater):  # the grace period for an undo ends with a new rollout
                    _retire_previous(services, current, cause, grace=False)
            services.state.put("rollout-archive", f"{key}.{current['deployment']}", current)
        endpoint = services.platform.get_endpoint(plan.workspace, plan.endpoint)
        model = services.platform.get_model(
            model_record.get("serving_location", model_record["workspace"]), model_record["model"],
            model_record["version"],
        )
        services.platform.create_deployment(plan.workspace, plan.endpoint, deployment, model, plan.deployment)
        record: Record = {
            "id": f"{plan.endpoint}/{deployment}", "key": key, "workspace": plan.workspace,
            "endpoint": plan.endpoint, "deployment": deployment, "rule": rule.name,
            "model": model_record["model"], "version": model_record["version"], "plan": plan.model_dump(),
            "baseline": {"traffic": _live(endpoint.traffic), "mirror": _live(endpoint.mirror_traffic)},
            "state": "progressing", "phase": "provisioning", "step": -1, "target": None,
            "step_started": None, "failures": 0, "inconclusive": 0, "approved": [], "retire_at": None,
            "retired": False, "started": now().isoformat(), "history": [],
        }
        _log(record, "start", cause, f"deployment {deployment} created for {model.uri}")
        services.state.put("rollout", key, record)
    lifecycle.audit(services, cause, record["id"], "rollout", "started", f"on {plan.workspace}/{plan.endpoint}")
    mirror = f", mirror {plan.mirror.percent}% first" if plan.mirror else ""
    _notify(services, record, "rollout.started", f"Rollout of {record['model']} v{record['version']} started",
            f"steps {plan.steps} on {plan.endpoint}{mirror}")
    return record


def tick(services: Services, key: str, actor: str = "timer") -> str:
    """Advance one rollout as far as current state allows; return its state."""
    try:
        with holding(services, key, wait_seconds=0):
            record = services.state.get("rollout", key)
            if record is None:
                return "none"
            _advance(services, record, actor)
            services.state.put("rollout", key, record)
            return str(record["state"])
    except RolloutBusy:
        return "busy"


def tick_all(services: Services, actor: str = "timer") -> dict[str, str]:
    """Tick every rollout that has something left to do. Each endpoint fails alone: whatever one
    tick raises is recorded (audit, ops told once per distinct failure) and the others go on."""
    results = {}
    for record in services.state.list("rollout"):
        key = str(record.get("key", "?"))
        try:
            if record["state"] in ACTIVE or (record["state"] == "succeeded" and not record["retired"]):
                results[key] = tick(services, key, actor)
        except TryLater as error:  # the endpoint is busy: the next tick goes on, nothing to report
            results[key] = f"later: {error}"
        except Exception as error:
            results[key] = f"error: {type(error).__name__}: {error}"
            lifecycle.report_failure(services, "rollout", key, error, actor)
    return results


def act(services: Services, key: str, action: str, actor: str, reason: str = "") -> Record:
    """An admin action on the endpoint's rollout, under its lease: pause, resume, approve,
    promote (now), abort, undo. Raises RolloutError when the action does not fit."""
    with holding(services, key):
        record = services.state.get("rollout", key)
        if record is None:
            raise NotFound(f"no rollout on {key}")
        _ACTIONS[action](services, record, actor, reason or f"{action} by {actor}")
        services.state.put("rollout", key, record)
    try:
        tick(services, key, actor)
    except PlatformError as error:  # the action is recorded: the timer's next tick carries it on
        log.warning("rollout %s: the tick after %s failed for now: %s", key, action, error)
    except Exception as error:  # the action is recorded; what its tick hit is reported, not the caller's fault
        lifecycle.report_failure(services, "rollout", key, error, actor)
    return services.state.get("rollout", key) or record


def set_traffic(services: Services, workspace: str, endpoint: str, traffic: dict[str, int],
                mirror: dict[str, int], actor: str) -> None:
    """An admin's traffic change: applied under the lease; an active rollout is paused, not fought."""
    key = key_for(workspace, endpoint)
    with holding(services, key):
        services.platform.set_traffic(workspace, endpoint, traffic, mirror)
        record = services.state.get("rollout", key)
        if record and record["state"] in ("progressing", "awaiting_approval"):
            record["state"] = "paused"
            record["target"] = None
            _log(record, "pause", actor, f"manual traffic change to {traffic} (mirror {mirror})")
            services.state.put("rollout", key, record)


@contextlib.contextmanager
def holding(services: Services, key: str, wait_seconds: float = 5.0) -> Iterator[None]:
    """The endpoint's lease; waits briefly for a tick to finish, then gives up with RolloutBusy."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with services.state.lease("rollout", key, seconds=60):
                yield
            return
        except Conflict as error:
            if "leased" not in str(error) or time.monotonic() >= deadline:
                raise RolloutBusy(f"endpoint {key} is being changed by someone else; try again") from error
            time.sleep(0.2)


# The state machine ------------------------------------------------------------------


def _advance(services: Services, record: Record, actor: str) -> None:
    try:
        _decide(services, record, actor)
    except Refused as refused:
        if record["state"] == "rolling_back":
            record["state"] = "failed"
            _log(record, "failed", actor, f"the platform refused to restore the traffic: {refused}")
        else:
            _rollback(services, record, actor, f"the platform refused a traffic change: {refused}")


def _decide(services: Services, record: Record, actor: str) -> None:
    if record["state"] == "succeeded":
        _retire_previous(services, record, actor)
        return
    if record["state"] not in ("progressing", "rolling_back"):
        return
    endpoint = services.platform.get_endpoint(record["workspace"], record["endpoint"])
    if endpoint.is_updating:
        return
    if record["state"] == "rolling_back":
        _rollback(services, record, actor, record.get("rollback_reason", ""))
        return
    deployment = next((d for d in endpoint.deployments if d.name == record["deployment"]), None)
    if deployment is None or deployment.has_failed:  # Failed or Canceled: waiting will not make it succeed
        _rollback(services, record, actor, f"deployment {record['deployment']} is missing or failed to provision "
                  f"({deployment.provisioning_state if deployment else 'missing'})")
        return
    if deployment.provisioning_state.lower() != "succeeded":
        return
    target = record["target"]
    live = (_live(endpoint.traffic), _live(endpoint.mirror_traffic))
    if target and live != (_live(target["traffic"]), _live(target["mirror"])):
        _apply(services, record, target["traffic"], target["mirror"])  # the change did not take: apply again
        return
    if record["phase"] == "provisioning":
        _enter_next_phase(services, record, actor)
        return
    plan = plan_of(record)
    bake = plan.mirror.bake_seconds if record["phase"] == "mirror" and plan.mirror else plan.bake_seconds
    started = datetime.fromisoformat(record["step_started"])
    if record.get("skip_analysis"):
        _finish(services, record, actor, "promoted without analysis")
        return
    if now() - started < timedelta(seconds=bake):
        return
    metrics = services.platform.get_deployment_metrics(record["workspace"], record["endpoint"],
                                                       record["deployment"], started)
    verdict = analyze(metrics, plan.gates)
    _log(record, f"analysis:{verdict.result}", actor, "; ".join(verdict.reasons), metrics=verdict.observed)
    if verdict.result == "fail":
        record["failures"] += 1
        if record["failures"] >= plan.failure_limit:
            _rollback(services, record, actor, "; ".join(verdict.reasons), verdict.observed)
        else:
            record["step_started"] = now().isoformat()
    elif verdict.result == "inconclusive":
        record["inconclusive"] += 1
        if record["inconclusive"] >= plan.inconclusive_limit:
            _rollback(services, record, actor, "inconclusive too long: " + "; ".join(verdict.reasons),
                      verdict.observed)
    elif record["phase"] == "step" and plan.steps[record["step"]] == 100:
        _finish(services, record, actor, "; ".join(verdict.reasons))
    else:
        _enter_next_phase(services, record, actor)


def _enter_next_phase(services: Services, record: Record, actor: str) -> None:
    plan = plan_of(record)
    baseline = record["baseline"]
    if record["phase"] == "provisioning" and plan.mirror and any(baseline["traffic"].values()):
        record["phase"] = "mirror"
        _apply(services, record, baseline["traffic"], {record["deployment"]: plan.mirror.percent})
        _log(record, "mirror", actor, f"mirror {plan.mirror.percent}% to {record['deployment']}")
        return
    step = record["step"] + 1
    if not any(baseline["traffic"].values()):
        # As Flagger does for a first deployment: nothing to compare with or roll back to.
        record.update(phase="step", step=len(plan.steps) - 1, skip_analysis=True)
        _apply(services, record, {record["deployment"]: 100}, {})
        _log(record, "step", actor, "first deployment on an empty endpoint: 100% without analysis")
        return
    percent = plan.steps[step]
    if percent in plan.manual_gates and percent not in record["approved"]:
        record["state"] = "awaiting_approval"
        _log(record, "awaiting_approval", actor, f"step {percent}% waits for approval")
        return
    record.update(phase="step", step=plan.steps.index(percent), failures=0, inconclusive=0)
    traffic = split(baseline["traffic"], record["deployment"], percent)
    _apply(services, record, traffic, {})
    _log(record, "step", actor, f"{percent}% of traffic to {record['deployment']}")
    if percent == 100 or step == 0:
        _notify(services, record, "rollout.step", f"{record['deployment']} takes {percent}% of {record['endpoint']}",
                "", suffix=str(percent))


def _apply(services: Services, record: Record, traffic: dict[str, int], mirror: dict[str, int]) -> None:
    """Start a traffic change; the bake time starts now, and the next tick verifies it took."""
    record["target"] = {"traffic": traffic, "mirror": mirror}
    record["step_started"] = now().isoformat()
    try:
        services.platform.set_traffic(record["workspace"], record["endpoint"], traffic, mirror)
    except TryLater:
        pass  # the endpoint is busy: the next tick applies it again
    except (NotFound, Transient):
        raise
    except PlatformError as error:
        raise Refused(str(error)) from error


def _finish(services: Services, record: Record, actor: str, reason: str) -> None:
    plan = plan_of(record)
    record.update(state="succeeded", target=None, finished=now().isoformat())
    record["retire_at"] = (now() + timedelta(seconds=plan.retire_previous_after_seconds)).isoformat()
    _log(record, "succeeded", actor, reason)
    model_key = lifecycle.key_of(record["model"], record["version"])
    model = services.state.get("lifecycle", model_key) or {}
    services.state.put("champion", record["rule"], {
        "model": record["model"], "version": record["version"], "deployment": record["deployment"],
        "endpoint": record["endpoint"], "metrics": model.get("metrics", {}), "since": now().isoformat(),
    })
    _tag(services, record, "live")
    lifecycle.set_stage(services, model_key, "live", f"serving 100% of {record['endpoint']}", actor)
    _notify(services, record, "rollout.completed", f"{record['model']} v{record['version']} is live", reason)


def _rollback(services: Services, record: Record, actor: str, reason: str, observed: dict | None = None) -> None:
    """Restore the traffic split from before the rollout; keep the new deployment for diagnosis."""
    record.update(state="rolling_back", rollback_reason=reason)
    baseline = record["baseline"]
    try:
        services.platform.set_traffic(record["workspace"], record["endpoint"], baseline["traffic"], baseline["mirror"])
    except TryLater:
        _log(record, "rollback-pending", actor, "endpoint busy; the next tick restores the traffic")
        return
    except (NotFound, Transient):
        raise
    except PlatformError as error:
        raise Refused(str(error)) from error
    record.update(state="rolled_back", target=None, finished=now().isoformat())
    _log(record, "rolled_back", actor, reason, metrics=observed)
    _tag(services, record, "rolled_back")
    lifecycle.set_stage(services, lifecycle.key_of(record["model"], record["version"]), "rolled_back", reason, actor)
    facts = tuple((name, "-" if value is None else f"{value:.4g}") for name, value in (observed or {}).items())
    _notify(services, record, "rollout.rolled_back", f"Rollout of {record['model']} v{record['version']} rolled back",
            reason, severity="error", facts=facts)


def _retire_previous(services: Services, record: Record, actor: str, grace: bool = True) -> None:
    if record["retired"] or not record["retire_at"]:
        return
    if grace and now() < datetime.fromisoformat(record["retire_at"]):
        return
    endpoint = services.platform.get_endpoint(record["workspace"], record["endpoint"])
    if endpoint.is_updating:
        return
    retired = []
    for name in record["baseline"]["traffic"]:
        if name != record["deployment"] and not endpoint.traffic.get(name) and not endpoint.mirror_traffic.get(name):
            with contextlib.suppress(NotFound):
                services.platform.delete_deployment(record["workspace"], record["endpoint"], name)
            retired.append(name)
    record["retired"] = True
    _log(record, "retired", actor, f"previous deployments deleted: {retired or 'none'}")


# Stored records -----------------------------------------------------------------------

_SECONDS_FIELDS = ("bake_seconds", "retire_previous_after_seconds")


def plan_of(record: Record) -> RolloutPlan:
    """The record's plan. A plan stored before the policy had its bounds is held to them (a number
    over its bound, or a seconds field that is not finite, becomes the bound) instead of failing
    every tick of its endpoint."""
    stored = record["plan"]
    try:
        return RolloutPlan.model_validate(stored)
    except ValidationError as error:
        bounded = copy.deepcopy(stored)
        for item in error.errors():
            bound = _bound(item)
            if bound is None:
                raise
            _put(bounded, item["loc"], bound)
        return RolloutPlan.model_validate(bounded)


def _bound(item: Any) -> float | None:
    """The bound an out-of-range stored number is held to, or None when the error is another."""
    if item["type"] == "less_than_equal":
        return float(item["ctx"]["le"])
    if item["type"] == "finite_number" and item["loc"] and item["loc"][-1] in _SECONDS_FIELDS:
        return float(MAX_SECONDS)
    return None


def _put(document: Any, loc: tuple[str | int, ...], value: float) -> None:
    for part in loc[:-1]:
        document = document[part]
    document[loc[-1]] = value


# Admin actions ------------------------------------------------------------------------


def _pause(services: Services, record: Record, actor: str, reason: str) -> None:
    _require(record, ("progressing", "awaiting_approval"), "pause")
    record["state"] = "paused"
    _log(record, "pause", actor, reason)


def _resume(services: Services, record: Record, actor: str, reason: str) -> None:
    _require(record, ("paused",), "resume")
    record.update(state="progressing", step_started=now().isoformat(), target=None)
    _log(record, "resume", actor, reason)


def _approve(services: Services, record: Record, actor: str, reason: str) -> None:
    _require(record, ("awaiting_approval",), "approve")
    plan = plan_of(record)
    record["approved"].append(plan.steps[record["step"] + 1])
    record["state"] = "progressing"
    _log(record, "approve", actor, reason)


def _promote_now(services: Services, record: Record, actor: str, reason: str) -> None:
    _require(record, ("progressing", "paused", "awaiting_approval"), "promote")
    plan = plan_of(record)
    record.update(state="progressing", phase="step", step=len(plan.steps) - 1, skip_analysis=True)
    _apply(services, record, split(record["baseline"]["traffic"], record["deployment"], 100), {})
    _log(record, "promote", actor, reason)


def _abort(services: Services, record: Record, actor: str, reason: str) -> None:
    _require(record, ("progressing", "paused", "awaiting_approval"), "abort")
    _rollback(services, record, actor, reason)


def _undo(services: Services, record: Record, actor: str, reason: str) -> None:
    _require(record, ("succeeded",), "undo")
    if record["retired"]:
        raise RolloutError("the previous deployments are already retired; there is nothing to go back to")
    _rollback(services, record, actor, reason)


def _require(record: Record, states: tuple[str, ...], action: str) -> None:
    if record["state"] not in states:
        raise RolloutError(f"cannot {action} a rollout that is {record['state']} (needs {' or '.join(states)})")


_ACTIONS: dict[str, Callable[[Services, Record, str, str], None]] = {
    "pause": _pause, "resume": _resume, "approve": _approve, "promote": _promote_now, "abort": _abort, "undo": _undo,
}
ACTIONS = tuple(_ACTIONS)


def _log(record: Record, action: str, actor: str, reason: str, metrics: dict | None = None) -> None:
    target = record.get("target") or {}
    record["history"].append({
        "time": now().isoformat(), "action": action, "actor": actor, "reason": reason,
        "traffic": target.get("traffic"), "mirror": target.get("mirror"), "metrics": metrics,
    })


def _tag(services: Services, record: Record, stage: str) -> None:
    model = services.state.get("lifecycle", lifecycle.key_of(record["model"], record["version"]))
    if model:
        services.platform.set_model_tags(model["workspace"], record["model"], record["version"], {lifecycle.TAG: stage})


def _notify(services: Services, record: Record, kind: str, title: str, summary: str, severity: str = "info",
            facts: tuple = (), suffix: str = "") -> None:
    rule = services.policy.rule_named(record["rule"])
    notification = Notification(
        id=f"{kind}:{record['endpoint']}:{record['deployment']}" + (f":{suffix}" if suffix else ""),
        kind=kind, title=title, summary=summary, severity=severity, subject=record["id"].replace("/", ":"),
        facts=facts,
    )
    lifecycle.notify(services, notification, rule.channels_for(kind) if rule else None)
