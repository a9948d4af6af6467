"""The rollout engine: the I/O around the rollout state machine (`shared.domain.rollout`).

One record per endpoint, advanced by ticks, never by sleeping. Each tick holds the endpoint's
lease (one writer), reads the endpoint, lets the machine decide, carries out what it decided
(traffic changes, metrics for an analysis, deletions, notifications) and stores the record.
Admin actions take the same lease, so a tick and an admin change never overwrite each other.
The engine knows nothing of model lifecycles: a lifecycle reads its rollout's outcome itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime

from shared.adapters import telemetry
from shared.adapters.storage.stores import InvalidRecord, Listed, Page
from shared.bootstrap import Services
from shared.domain import rollout as machine
from shared.domain import shadow
from shared.domain.decisions import deployment_name
from shared.domain.notification import Notification
from shared.domain.policy import RolloutPlan
from shared.domain.ports import Busy, DeploymentMetrics, NotFound, PlatformError, Transient
from shared.domain.records import Phase, Rollout, RolloutAction
from shared.domain.rollout import Measure, Move, Outcome, Retire, RolloutError, SetTraffic, Tell, key_for
from shared.domain.shadow import ShadowComparison
from shared.reactor import outcomes, setaside

__all__ = ["RolloutError", "act", "key_for", "set_traffic", "start", "tick", "tick_all"]
TICKED = (*(state.value for state in machine.State if state.is_active), "succeeded")  # until retired
log = logging.getLogger(__name__)


class RolloutEnded(RolloutError):
    """The version's rollout on the endpoint has ended; starting it again must be asked for (HTTP 409)."""


def find(services: Services, key: str, deployment: str) -> Rollout | None:
    """The latest rollout of `deployment` on the endpoint: the current one or an archived one."""
    record = services.state.rollouts.get(key)
    if record is not None and record.deployment == deployment:
        return record
    archived = services.state.archived_rollouts.list(prefix=f"{key}.{deployment}.")
    return max(archived, key=lambda found: found.started) if archived else None


def history(services: Services, key: str, limit: int = 100, token: str | None = None) -> Page[Rollout]:
    """A page of the endpoint's finished rollouts, newest first, each loaded when asked for: the current one first
    when it has ended, then the archived ones. `token` is the `next` of the page before (None: the first page).
    One index query a page, and the current record. BadToken for a token no page of this endpoint's history gave."""
    archive = services.state.archived_rollouts
    found = services.state.rollouts.get(key)
    ended = found if found is not None and found.state.has_ended else None
    # A restart runs the same version again under the same id: a run is its id and when it started, and the
    # current run is archived under `archive_key` (only when the next one starts: once only a crash between).
    again = archive_key(ended) if ended else None
    if ended is None or token is not None:
        page = archive.newest_page(key, limit, token)
        return Page([listed for listed in page.items if listed.key != again], page.next)
    current = Listed(key, lambda: ended)
    if limit > 1:
        page = archive.newest_page(key, limit - 1)
        return Page([current, *(listed for listed in page.items if listed.key != again)], page.next)
    page = archive.newest_page(key, 2)  # a page of the current run alone: is anything archived after it?
    more = page.next is not None or any(listed.key != again for listed in page.items)
    return Page([current], archive.first_token(key) if more else None)


def archive_key(record: Rollout) -> str:
    """Where an endpoint's rollout is archived when the next one starts: `<endpoint key>.<deployment>.<started>`."""
    return f"{record.key}.{record.deployment}.{record.started:%Y%m%dT%H%M%S%f}"


def start(services: Services, rule: str, plan: RolloutPlan, location: str, model: str, version: str, cause: str,
          restart: bool = False) -> Rollout:
    """Create the new deployment and the rollout record; the ticks do the rest. Idempotent: the
    version's active rollout is answered as it is. Its ended rollout is refused (RolloutEnded)
    unless `restart` asks to start it again, with `plan`."""
    key = key_for(plan.workspace, plan.endpoint)
    deployment = deployment_name(model, version)
    with holding(services, key):
        record = services.state.rollouts.get(key)
        if record and record.deployment == deployment and record.state.is_active:
            return record
        if record and record.deployment == deployment and not restart:
            raise RolloutEnded(f"the rollout of {model} v{version} on {plan.endpoint} has ended "
                               f"{record.state.value}; ask for restart to start it again")
        if record and record.state.is_active:
            raise Busy(f"rollout {record.id} is still active on {plan.endpoint}")
        if record:
            if record.state is machine.State.SUCCEEDED:
                with contextlib.suppress(Busy):  # the grace period for an undo ends with a new rollout
                    endpoint = services.platform.get_endpoint(record.workspace, record.endpoint)
                    retired = machine.retire(record, endpoint, services.clock(), cause, grace=False)
                    record = _carry_out(services, retired, cause)
            services.state.archived_rollouts.put(archive_key(record), record)
        endpoint = services.platform.get_endpoint(plan.workspace, plan.endpoint)
        serving = services.platform.get_model(location, model, version)
        spec = plan.deployment
        if plan.mirror and plan.mirror.predictions:  # the mirror phase compares what both deployments collect
            spec = spec.model_copy(update={"collect_predictions": True})
        services.platform.create_deployment(plan.workspace, plan.endpoint, deployment, serving, spec)
        move = machine.begin(rule, plan, model, version, deployment, endpoint, cause, services.clock(),
                             f"deployment {deployment} created for {serving.uri}")
        _store(services, move.record, since=0)
    outcomes.audit(services, cause, move.record.id, "rollout", "started", f"on {plan.workspace}/{plan.endpoint}")
    return _carry_out(services, move, cause)


def tick(services: Services, key: str, actor: str = "timer") -> str:
    """Advance one rollout as far as current state allows; return its state ("busy" while another holds it)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(holding(services, key, wait_seconds=0))
        except Busy:
            return "busy"
        record = services.state.rollouts.get(key)
        if record is None:
            return "none"
        seen = len(record.history)
        record = _advance(services, record, actor)
        _store(services, record, since=seen)
        return record.state.value


def tick_all(services: Services, actor: str = "timer") -> dict[str, str]:
    """Tick every rollout that has something left to do. Each endpoint fails alone: whatever one
    tick raises is recorded (an incident of the endpoint: ops told once, and again when a tick succeeds) and the
    others go on."""
    results = {}
    store = services.state.rollouts
    for listed in store.listing(where={"ticked": True}):  # the index's ticked ones: O(active rollouts)
        key = listed.key
        try:
            record = listed.load()
            if record.state in TICKED and not record.retired:
                results[key] = tick(services, key, actor)
                outcomes.recovered(services, "rollout", key, actor)  # closes the endpoint's incident, if open
        except Busy as error:  # the endpoint is busy: the next tick goes on, nothing to report
            results[key] = f"later: {error}"
        except Exception as error:
            results[key] = f"error: {type(error).__name__}: {error}"
            outcomes.report_failure(services, "rollout", key, error, actor)
            if isinstance(error, InvalidRecord) and error.key == key:
                setaside.set_aside(services, store, error, actor, report=False)
    return results


def act(services: Services, key: str, action: RolloutAction, actor: str, reason: str = "",
        full: bool = False) -> Rollout:
    """An admin action on the endpoint's rollout, under its lease. Raises RolloutError when it
    does not fit; the tick that follows carries it on at once."""
    action = RolloutAction(action)
    with holding(services, key):
        record = services.state.rollouts.get(key)
        if record is None:
            raise NotFound(f"no rollout on {key}")
        move = machine.act(record, action, actor, reason or f"{action.value} by {actor}", services.clock(), full=full)
        _store(services, _carry_out(services, move, actor), since=len(record.history))
    try:
        tick(services, key, actor)
    except PlatformError as error:  # the action is recorded: the timer's next tick carries it on
        log.warning("rollout %s: the tick after %s failed for now: %s", key, action.value, error)
    except Exception as error:  # the action is recorded; what its tick hit is reported, not the caller's fault
        outcomes.report_failure(services, "rollout", key, error, actor)
    return services.state.rollouts.get(key) or record


def set_traffic(services: Services, workspace: str, endpoint: str, traffic: dict[str, int],
                mirror: dict[str, int], actor: str) -> Rollout | None:
    """An admin's traffic change: applied under the lease; an active rollout is paused, not fought."""
    key = key_for(workspace, endpoint)
    with holding(services, key):
        services.platform.set_traffic(workspace, endpoint, traffic, mirror)
        record = services.state.rollouts.get(key)
        if record is not None:
            seen = len(record.history)
            record = machine.paused_by_hand(record, traffic, mirror, actor, services.clock()).record
            _store(services, record, since=seen)
        return record


@contextlib.contextmanager
def holding(services: Services, key: str, wait_seconds: float = 5.0) -> Iterator[None]:
    """The endpoint's lease; waits briefly for a tick to finish, then gives up: Busy.
    Only acquiring is retried: what the body raises is the body's."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(services.state.rollouts.lease(key, seconds=60, wait_seconds=wait_seconds))
        except Busy as error:
            raise Busy(f"endpoint {key} is being changed by someone else") from error
        yield


def _store(services: Services, record: Rollout, since: int) -> None:
    """Keep the record; its history from `since` on is new, and goes to telemetry too."""
    services.state.rollouts.put(record.key, record)
    telemetry.rollout_progress(record, record.history[since:])


def _advance(services: Services, record: Rollout, actor: str) -> Rollout:
    """One tick's decision, taken at one moment: the metrics an analysis asks for are judged then too."""
    now = services.clock()
    if not machine.needs_endpoint(record, now):
        return record
    endpoint = services.platform.get_endpoint(record.workspace, record.endpoint)
    move = machine.advance(record, endpoint, now, actor)
    measure = next((action for action in move.actions if isinstance(action, Measure)), None)
    if measure is not None:
        metrics, champion = _measure(services, record, measure, now)
        move = machine.advance(record, endpoint, now, actor, metrics, champion,
                               _predictions(services, record, measure.since))
    return _carry_out(services, move, actor)


def _measure(services: Services, record: Rollout, measure: Measure,
             now: datetime) -> tuple[DeploymentMetrics, DeploymentMetrics | None]:
    """The canary's metrics since the step began, and its champion's over the same minutes (one `until`)."""
    def read(deployment: str) -> DeploymentMetrics:
        return services.platform.get_deployment_metrics(record.workspace, record.endpoint, deployment, measure.since,
                                                        until=now, metrics=measure.metrics)

    canary = read(record.deployment)
    if measure.champion is None:
        return canary, None
    try:
        return canary, read(measure.champion)
    except NotFound:  # the champion was deleted by hand: judged on the absolute gates alone
        return canary, None


def _predictions(services: Services, record: Rollout, since: datetime) -> ShadowComparison | None:
    """In a mirror phase that compares predictions: the shadow's collected rows against the champion's
    (the baseline's deployments with live traffic) over the same window; None otherwise."""
    gate = record.plan.mirror.predictions if record.plan.mirror else None
    if record.phase is not Phase.MIRROR or gate is None:
        return None
    until, logs = services.clock(), services.predictions
    champion = [row for name, share in sorted(record.baseline.traffic.items()) if share
                for row in logs.collected(record.workspace, record.endpoint, name, since, until)]
    return shadow.compare(champion, logs.collected(record.workspace, record.endpoint, record.deployment, since,
                                                   until), gate)


def _carry_out(services: Services, move: Move, actor: str) -> Rollout:
    """Do what the machine decided, in order. A traffic change's outcome goes back to the machine,
    whose next move replaces what was left of this one when the change did not take."""
    record = move.record
    for action in move.actions:
        if isinstance(action, SetTraffic):
            outcome, detail = _set_traffic(services, record, action)
            if outcome is Outcome.REFUSED or record.state is machine.State.ROLLING_BACK:
                return _carry_out(services, machine.applied(record, outcome, detail, services.clock(), actor), actor)
        elif isinstance(action, Retire):
            for name in action.deployments:
                with contextlib.suppress(NotFound):
                    services.platform.delete_deployment(record.workspace, record.endpoint, name)
        elif isinstance(action, Tell):
            _tell(services, record, action)
    return record


def _set_traffic(services: Services, record: Rollout, change: SetTraffic) -> tuple[Outcome, str]:
    try:
        services.platform.set_traffic(record.workspace, record.endpoint, change.traffic, change.mirror)
    except Busy as busy:
        return Outcome.BUSY, str(busy)
    except (NotFound, Transient):
        raise  # not a refusal of this change: the tick fails and the next one decides again
    except PlatformError as error:
        return Outcome.REFUSED, str(error)
    return Outcome.APPLIED, ""


def _tell(services: Services, record: Rollout, tell: Tell) -> None:
    suffix = f":{tell.suffix}" if tell.suffix else ""
    outcomes.notify_for_rule(services, record.rule, Notification(
        id=f"{tell.kind}:{record.endpoint}:{record.deployment}{suffix}", kind=tell.kind,
        title=tell.title, summary=tell.summary, severity=tell.severity,
        subject=record.id.replace("/", ":"), facts=tell.facts, table=tell.table,
    ))
