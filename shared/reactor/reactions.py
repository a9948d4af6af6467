"""What the app does about each Azure ML event. Every reaction re-reads current state
from the platform before it acts; the event only says where to look."""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

from shared.adapters.storage.stores import InvalidRecord
from shared.bootstrap import Services
from shared.domain import discovery
from shared.domain import lifecycle as machine
from shared.domain.decisions import breach_notification_id, drift_needs_retraining, retrain_job_name
from shared.domain.events import (
    AmlEvent,
    DriftData,
    EventKind,
    ModelDeployedData,
    ModelRegisteredData,
    MonitorBreach,
    RunData,
    Workspace,
    monitor_breach,
)
from shared.domain.notification import Notification, Table
from shared.domain.ports import Busy, Job, JobStatus, ModelVersion, NotFound
from shared.domain.records import Lifecycle
from shared.reactor import lifecycle, outcomes, setaside
from shared.reactor import rollout as engine

log = logging.getLogger(__name__)


def react(event: AmlEvent, services: Services) -> None:
    workspace = workspace_name(services, event.workspace)
    if workspace is None:
        _record(services, event, "ignored", f"workspace {event.workspace.name} is not one this app watches")
        return
    handler = {
        EventKind.MODEL_REGISTERED: on_model_registered,
        EventKind.RUN_COMPLETED: on_run_event,
        EventKind.RUN_STATUS_CHANGED: on_run_event,
        EventKind.DATASET_DRIFT_DETECTED: on_drift,
        EventKind.MODEL_DEPLOYED: on_model_deployed,
    }[event.kind]
    handler(services, event, workspace)


def workspace_name(services: Services, workspace: Workspace) -> str | None:
    """The logical name (`dev`, `prod`) of the workspace an event came from."""
    for name, resource_id in services.settings.workspaces.items():
        if resource_id.lower() == workspace.resource_id.lower():
            return name
    return None


def on_model_registered(services: Services, event: AmlEvent, workspace: str) -> None:
    data = event.data
    assert isinstance(data, ModelRegisteredData)
    try:
        model = services.platform.get_model(workspace, data.model_name, data.model_version)
    except NotFound:
        waited = _announced_for(services, event)
        what = f"model {data.model_name}:{data.model_version}"
        if waited is not None and waited < NOT_FOUND_PATIENCE:
            # Announced, not shown yet: Azure ML's reads may lag its events (eventual consistency).
            raise NotYetVisible(f"{what} was announced {waited.total_seconds():.0f} s ago but is not in {workspace} "
                                f"yet; its event is taken again later") from None
        _record(services, event, "ignored",
                f"{what} is not in {workspace} {_after(waited)}; the resync's discovery starts it if it appears")
        return
    refused = start_lifecycle(services, workspace, model, cause=event.id)
    if refused is not None:
        _record(services, event, "ignored", refused)
        return
    lifecycle.reconcile(services, machine.key_of(model.name, model.version), cause=event.id)


NOT_FOUND_PATIENCE = timedelta(minutes=10)
"""How long after its announcement a model version the platform does not show is looked for again: at the
worker's re-delivery delays (2 s doubling, jittered), 8 or 9 re-deliveries, within the worker's 10. Then it
is ignored, audited; the resync's discovery still finds it if it appears later."""


class NotYetVisible(Busy):
    """An event announced something the platform does not show yet: the worker delivers the event again later."""


def _announced_for(services: Services, event: AmlEvent) -> timedelta | None:
    """How long ago the app first received the event (its ledger entry), else the event's own time says."""
    entry = services.state.ledger.get(event.dedupe_key)
    since = entry.received if entry is not None else event.time
    if since is None:
        return None
    moment = since if since.tzinfo else since.replace(tzinfo=UTC)
    return max(timedelta(0), services.clock() - moment)


def _after(waited: timedelta | None) -> str:
    return "(the event's time is unknown)" if waited is None else f"{waited.total_seconds():.0f} s after its event"


def start_lifecycle(services: Services, workspace: str, model: ModelVersion, cause: str) -> str | None:
    """Start the lifecycle of a version registered in `workspace` (its test job, idempotent by name): what a
    ModelRegistered event and the resync's discovery both do. The reason, when no rule takes the version."""
    rule = services.policy.rule_for_model(model.name, model.tags)
    if rule is None:
        return f"no rule matches model {model.name} with tags {model.tags}"
    if rule.source_workspace != workspace:
        return f"registered in {workspace}; rule {rule.name} tests versions from {rule.source_workspace}"
    lifecycle.start_testing(services, rule, model, cause=cause)
    return None


def on_run_event(services: Services, event: AmlEvent, workspace: str) -> None:
    data = event.data
    assert isinstance(data, RunData)
    breach = data.breach()
    if breach is None and data.pipeline_run_id is not None:
        # Step runs raise run events too (domain/events.py, RunData.pipeline_run_id): the app reacts once per
        # pipeline, to the pipeline's own event, so a failed step and its failed pipeline give one notice.
        _record(services, event, "recorded",
                f"run {data.run_id} is a step of pipeline {data.pipeline_run_id or '(unnamed)'}: the pipeline's "
                "own event is the one acted on")
        return
    try:
        job = services.platform.get_job(workspace, data.run_id)
    except NotFound:
        _record(services, event, "ignored", f"run {data.run_id} is not a job in {workspace}")
        return
    if breach is not None:
        on_monitor_breach(services, event, workspace, job, breach)
        return
    purpose = job.tags.get("mlops.purpose")
    if purpose == "test":
        _reconcile_test_job(services, event, workspace, job.tags)
    elif job.status in (JobStatus.FAILED, JobStatus.CANCELED):
        outcomes.notify(services, Notification(
            id=f"job.failed:{workspace}:{job.name}", kind="job.failed", severity="error",
            title=f"Job {job.name} {job.status.value}",
            # Azure ML's job resource carries no failure reason: the adapter reads it from the run's details.
            summary=(job.error or "Azure ML gave no error") + (f"\n\nThe end of its log:\n{job.log}" if job.log
                                                                else ""),
            subject=job.name, link=job.studio_url,
            facts=(("experiment", data.experiment_name or job.experiment), ("run id", job.name),
                   ("status", job.status.value), ("workspace", workspace)),
        ), None)
        _record(services, event, "notified", f"job {job.name} {job.status.value}")
    else:
        _record(services, event, "recorded", f"job {job.name} is {job.status.value} ({purpose or 'not ours'})")


def _reconcile_test_job(services: Services, event: AmlEvent, workspace: str, tags: dict[str, str]) -> None:
    """A test job's event, even one that arrives before its model's: make sure the
    lifecycle exists, then let the controller take it as far as it can go."""
    name, version = tags["mlops.model"], tags["mlops.version"]
    key = machine.key_of(name, version)
    if services.state.lifecycles.get(key) is None:
        rule = services.policy.rule_named(tags.get("mlops.rule", ""))
        if rule is None:
            _record(services, event, "ignored", f"test job of {key} names no rule of the current policy")
            return
        lifecycle.start_testing(services, rule, services.platform.get_model(workspace, name, version), event.id)
    lifecycle.reconcile(services, key, cause=event.id)


def on_drift(services: Services, event: AmlEvent, workspace: str) -> None:
    data = event.data
    assert isinstance(data, DriftData)
    rule = services.policy.rule_for_monitor(data.data_drift_name)
    if rule is None or rule.drift is None:
        _record(services, event, "ignored", f"no rule watches drift monitor {data.data_drift_name!r}")
        return
    if not drift_needs_retraining(rule, data.drift_coefficient):
        _record(services, event, "recorded",
                f"drift {data.drift_coefficient:.3f} below the threshold {rule.drift.threshold}")
        return
    job_name = retrain_job_name(rule.name, data.run_id)
    tags = {"mlops.purpose": "retrain", "mlops.rule": rule.name, "mlops.drift_run": data.run_id}
    services.platform.submit_job(workspace, job_name, rule.drift.pipeline, dict(rule.drift.inputs), tags)
    outcomes.notify(services, Notification(
        id=f"retraining.started:{rule.name}:{job_name}", kind="retraining.started", severity="warning",
        title=f"Drift {data.drift_coefficient:.2f} on {data.data_drift_name}: retraining started",
        subject=data.data_drift_name,
        facts=(("drift coefficient", f"{data.drift_coefficient:.3f}"), ("threshold", f"{rule.drift.threshold}"),
               ("retraining job", job_name), ("workspace", workspace)),
    ), rule.channels_for("retraining.started"))
    _record(services, event, "retraining", f"drift {data.drift_coefficient:.3f} >= {rule.drift.threshold}: {job_name}")


def on_monitor_breach(services: Services, event: AmlEvent, workspace: str, job: Job, told: MonitorBreach) -> None:
    """A model monitor (v2) breached its thresholds: one retraining per monitoring run, and ops hear which
    signals breached, with their metrics.

    The run's current tags, re-read from the platform, say what breached; the event's copy only says where
    to look (and which monitoring run the step belongs to, which the job's tags do not carry).
    """
    current = monitor_breach(job.name, job.tags, {})
    if current is None:
        _record(services, event, "ignored", f"run {job.name} no longer reports a model monitor breach")
        return
    breach = current.model_copy(update={"monitoring_run_id": told.monitoring_run_id})
    found = services.policy.rule_for_signals(breach.signal_names)
    if found is None:
        _record(services, event, "ignored", f"no rule watches the model monitor signals {breach.signal_names}")
        return
    rule, watched = found
    assert rule.drift is not None
    job_name = retrain_job_name(rule.name, breach.monitoring_run_id)
    tags = {"mlops.purpose": "retrain", "mlops.rule": rule.name, "mlops.monitoring_run": breach.monitoring_run_id,
            "mlops.signals": ",".join(watched)}
    services.platform.submit_job(workspace, job_name, rule.drift.pipeline, dict(rule.drift.inputs), tags)
    signals = [signal for signal in breach.signals if signal.name in watched]
    rows = tuple(
        (signal.name, metric.group, metric.metric, _number(metric.value), _number(metric.threshold))
        for signal in signals for metric in signal.metrics
    )
    outcomes.notify(services, Notification(
        id=breach_notification_id(rule.name, job_name, watched), kind="retraining.started", severity="warning",
        title=f"Model monitor breached ({', '.join(watched)}): retraining started"[:200],
        subject=watched[0],
        summary=f"Signals over their thresholds in monitoring run {breach.monitoring_run_id}.",
        facts=(("breached signals", ", ".join(watched)), ("monitoring run", breach.monitoring_run_id),
               ("retraining job", job_name), ("workspace", workspace)),
        table=Table(header=("signal", "feature", "metric", "value", "threshold"), rows=rows) if rows else None,
        link=job.studio_url,
    ), rule.channels_for("retraining.started"))
    _record(services, event, "retraining",
            f"model monitor signals {', '.join(watched)} breached in run {breach.monitoring_run_id}: {job_name}")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def on_model_deployed(services: Services, event: AmlEvent, workspace: str) -> None:
    data = event.data
    assert isinstance(data, ModelDeployedData)
    outcomes.notify(services, Notification(
        id=f"model.deployed:{workspace}:{data.service_name}:{event.dedupe_key[:12]}", kind="model.deployed",
        title=f"{', '.join(data.model_ids) or 'A model'} deployed to {data.service_name}",
        subject=data.service_name, facts=(("workspace", workspace), ("compute", data.service_compute_type)),
    ), None)
    _record(services, event, "notified", f"deployed to {data.service_name}")


def resync(services: Services) -> dict[str, str]:
    """Discover the versions no event started, then reconcile every lifecycle still on its way and every
    rollout from platform state, so that work no event announced (a lost, late or failed delivery) still
    gets done.

    Each lifecycle fails alone: whatever its reconcile raises is recorded (audit, ops told once per
    distinct failure) and the others go on. A model's versions are taken newest first, so that of
    two versions waiting for one endpoint the newer one is deployed and the older one superseded.
    A lifecycle in `testing` is reconciled by reading its test job: a job whose RunCompleted was lost
    is judged here all the same.
    """
    results = tick_rollouts(services, actor="resync")  # first, so that lifecycles see their outcomes
    results.update(discover(services))  # before the lifecycles, so that what it starts moves on at once
    records = []
    store = services.state.lifecycles
    for listed in store.listing(where={"inflight": True}):  # the index's in-flight ones: O(in flight)
        try:
            records.append(listed.load())
        except InvalidRecord as error:
            _failed(services, results, listed.key, error)
            setaside.set_aside(services, store, error, "resync", report=False)
        except Exception as error:
            _failed(services, results, listed.key, error)
    for kind in (store, services.state.rollouts):
        results.update(setaside.set_aside_known(services, kind, "resync"))
    for record in in_flight(records):
        try:
            results[record.key] = lifecycle.reconcile(services, record.key, cause="resync")
        except Busy as error:  # reconciled elsewhere right now, or the platform is busy: next time
            results[record.key] = f"later: {error}"
        except Exception as error:
            _failed(services, results, record.key, error)
    return results


def watched_workspaces(services: Services) -> dict[str, tuple[str, ...]]:
    """The workspaces the policy's rules test versions from (and the settings configure), each with the
    model name patterns of its rules."""
    watched: dict[str, list[str]] = {}
    for rule in services.policy.rules:
        workspace = rule.source_workspace
        if workspace in services.settings.workspaces:
            watched.setdefault(workspace, []).append(rule.models.name)
    return {workspace: tuple(dict.fromkeys(patterns)) for workspace, patterns in watched.items()}


def discover(services: Services) -> dict[str, str]:
    """List each watched workspace's versions registered since its watermark and start the lifecycle of
    every one a rule takes that has none, as its ModelRegistered reaction would have. Each workspace fails
    alone; what fails is reported, and the listing stands where it was, to be tried again next period."""
    results: dict[str, str] = {}
    for workspace, patterns in watched_workspaces(services).items():
        key = f"discovery:{workspace}"
        try:
            results[key] = _discover_in(services, workspace, patterns)
        except Busy as error:
            results[key] = f"later: {error}"
        except Exception as error:
            results[key] = f"error: {type(error).__name__}: {error}"
            outcomes.report_failure(services, "discover", workspace, error, "resync")
    return results


def _discover_in(services: Services, workspace: str, patterns: tuple[str, ...]) -> str:
    stored = services.state.discoveries.get(workspace)
    state = stored or discovery.first(services.clock())
    since, before = discovery.window(state)
    versions = services.platform.list_model_versions(workspace, since, discovery.LIMIT, before=before,
                                                     names=patterns)
    started, failed = 0, 0
    for model in versions:
        key = machine.key_of(model.name, model.version)
        if services.state.lifecycles.get(key) is not None:
            continue  # its event (or an earlier listing) started it
        try:
            refused = start_lifecycle(services, workspace, model, cause="resync")
        except Exception as error:  # this version alone: the listing is not moved on, so it is taken again
            failed += 1
            if not isinstance(error, Busy):
                outcomes.report_failure(services, "discover", key, error, "resync")
            continue
        if refused is None:
            started += 1
            created = model.created_at.isoformat() if model.created_at else "an unknown time"
            outcomes.audit(services, "resync", key, "discover", "started",
                           f"registered in {workspace} at {created}; no event had started its lifecycle")
    created_times = [model.created_at for model in versions if model.created_at is not None]
    if failed == 0:
        services.state.discoveries.put(workspace, discovery.advanced(
            state, created_times, discovery.LIMIT, services.clock(), started))
    rest = "; more next period" if len(versions) >= discovery.LIMIT else ""
    kept = f"; {failed} failed, listed again next period" if failed else ""
    return f"listed {len(versions)} since {since.isoformat()}, started {started}{kept}{rest}"


def _failed(services: Services, results: dict[str, str], key: str, error: Exception) -> None:
    results[key] = f"error: {type(error).__name__}: {error}"
    outcomes.report_failure(services, "reconcile", key, error, "resync")


def tick_rollouts(services: Services, actor: str = "timer") -> dict[str, str]:
    """Tick every rollout; the version of each one that ended takes its outcome at once."""
    results = engine.tick_all(services, actor)
    for key, state in results.items():
        if state in ("succeeded", "rolled_back", "failed"):
            rollout = services.state.rollouts.get(key)
            if rollout is not None:
                lifecycle.follow(services, rollout, actor)
    return results


def in_flight(records: list[Lifecycle]) -> list[Lifecycle]:
    """The lifecycles still on their way, by model, each model's versions newest first."""
    waiting = [record for record in records if machine.watched(record)]
    waiting.sort(key=lambda record: machine.version_order(record.version), reverse=True)
    waiting.sort(key=lambda record: record.model)  # stable: newest first within each model
    return waiting


def _record(services: Services, event: AmlEvent, outcome: str, reason: str) -> None:
    outcomes.audit(services, event.id, event.subject, "react", outcome, reason)
