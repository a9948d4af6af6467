"""The model lifecycle: testing -> passed | failed -> promoted -> rolling out -> live | rolled back.

A promoted version that waits for its endpoint while a newer version of the model is waiting,
rolling out or serving there ends as `superseded`: it is reported, never deployed over the newer one.

`reconcile` is the controller loop for one model version: it reads the lifecycle
record and the platform's current state, takes the next idempotent step, and repeats
until it must wait. Events and the resync timer both call it, so an event that is
late, duplicated, out of order or never delivered changes nothing in the end result.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from shared.bootstrap import Services
from shared.decisions import evaluation_job_name, judge
from shared.notify import Notification, NotifyError, Table
from shared.platform.port import JobStatus, ModelVersion, TryLater
from shared.policy import Rule
from shared.storage.state import AuditEntry, Conflict, now

IN_FLIGHT = ("testing", "passed", "promoted")
TAG = "mlops.stage"
FAILED = "work.failed"  # the notification kind of an isolated failure
SUPERSEDED = "model.superseded"
_NUMERIC_VERSION = re.compile(r"^\d{1,30}(\.\d{1,30}){0,9}$")
log = logging.getLogger(__name__)


def key_of(name: str, version: str) -> str:
    return f"{name}:{version}"


def start_testing(services: Services, rule: Rule, model: ModelVersion, cause: str) -> dict[str, Any]:
    """Submit the model's test job (idempotent by name) and record the lifecycle as testing."""
    key = key_of(model.name, model.version)
    job_name = evaluation_job_name(model.name, model.version)
    inputs = {**rule.test.inputs, "model": model.uri}  # the test pipeline's declared input (pipelines/)
    tags = {"mlops.purpose": "test", "mlops.model": model.name, "mlops.version": model.version,
            "mlops.rule": rule.name}
    services.platform.submit_job(model.location, job_name, rule.test.pipeline, inputs, tags)
    created = services.state.create("lifecycle", key, {
        "model": model.name, "version": model.version, "workspace": model.location, "uri": model.uri,
        "rule": rule.name, "stage": "testing", "test_job": job_name,
        "history": [_entry("testing", cause, f"test job {job_name} submitted")],
    })
    if created:
        services.platform.set_model_tags(model.location, model.name, model.version, {TAG: "testing"})
        audit(services, cause, key, "test", "submitted", f"test job {job_name} ({rule.test.pipeline})")
    return services.state.get("lifecycle", key) or {}


def reconcile(services: Services, key: str, cause: str) -> str:
    """Advance one lifecycle as far as current platform state allows; return its stage."""
    with _exclusive(services, key):
        record = services.state.get("lifecycle", key)
        if record is None:
            return "unknown"
        rule = services.policy.rule_named(record["rule"])
        if rule is None:
            return record["stage"]
        for _ in range(len(IN_FLIGHT) + 1):
            stage = record["stage"]
            step = {"testing": _judge_test, "passed": _promote, "promoted": _roll_out}.get(stage)
            if step is None:
                return stage
            change = step(services, rule, record, cause)
            if change is None:
                return stage
            next_stage, reason, extra = change
            record = _move(services, key, next_stage, reason, extra, cause)
        return record["stage"]


def _judge_test(services: Services, rule: Rule, record: dict, cause: str) -> tuple | None:
    job = services.platform.get_job(record["workspace"], record["test_job"])
    if not job.status.is_terminal:
        return None
    if job.status is not JobStatus.COMPLETED:
        reason = f"test job {job.name} {job.status.value}: {job.error or 'no error given'}"
        _reject(services, rule, record, reason, None, cause, job.studio_url)
        return "failed", reason, {"metrics": job.metrics}
    champion = services.state.get("champion", rule.name)
    verdict = judge(rule.gates, job.metrics, champion["metrics"] if champion else None)
    table = verdict.table()
    if not verdict.passed:
        failed = ", ".join(r.describe() for r in verdict.results if not r.passed)
        _reject(services, rule, record, f"failed gates: {failed}", table, cause, job.studio_url)
        return "failed", f"failed gates: {failed}", {"metrics": job.metrics, "gates": table}
    services.platform.set_model_tags(record["workspace"], record["model"], record["version"], {TAG: "passed"})
    _notify(services, rule, Notification(
        id=f"model.tested:{key_of(record['model'], record['version'])}", kind="model.tested",
        title=f"{record['model']} v{record['version']} passed its gates", subject=_subject(record),
        table=Table(header=tuple(table["header"]), rows=tuple(tuple(r) for r in table["rows"])),
        link=job.studio_url,
    ))
    return "passed", "every gate passed", {"metrics": job.metrics, "gates": table}


def _reject(services: Services, rule: Rule, record: dict, reason: str, table: dict | None, cause: str,
            link: str | None) -> None:
    services.platform.set_model_tags(record["workspace"], record["model"], record["version"], {TAG: "rejected"})
    _notify(services, rule, Notification(
        id=f"model.rejected:{key_of(record['model'], record['version'])}", kind="model.rejected", severity="warning",
        title=f"{record['model']} v{record['version']} rejected", summary=reason, subject=_subject(record),
        table=Table(header=tuple(table["header"]), rows=tuple(tuple(r) for r in table["rows"])) if table else None,
        link=link,
    ))


def _promote(services: Services, rule: Rule, record: dict, cause: str) -> tuple:
    model = services.platform.get_model(record["workspace"], record["model"], record["version"])
    serving, copies = model, {}
    for target in rule.promotion.path if rule.promotion else []:
        # Deployments reference the registry's copy: one artefact for every workspace that serves it.
        serving = services.platform.promote_model(model, target)
        copies[target] = serving.uri
    services.platform.set_model_tags(record["workspace"], record["model"], record["version"], {TAG: "promoted"})
    if copies:
        _notify(services, rule, Notification(
            id=f"model.promoted:{key_of(record['model'], record['version'])}", kind="model.promoted",
            title=f"{record['model']} v{record['version']} promoted", subject=_subject(record),
            facts=tuple(copies.items()),
        ))
    return "promoted", "promoted to " + (", ".join(copies) or "nowhere (no promotion path)"), {
        "promoted_to": copies, "serving_uri": serving.uri, "serving_location": serving.location,
    }


def _roll_out(services: Services, rule: Rule, record: dict, cause: str) -> tuple | None:
    if rule.rollout is None:
        return None
    from shared.rollout import engine

    newer = _newer_version(services, rule, record)
    if newer is not None:
        version, where = newer
        reason = f"v{version} of {record['model']} is newer and {where}: v{record['version']} is not deployed"
        services.platform.set_model_tags(record["workspace"], record["model"], record["version"], {TAG: "superseded"})
        _notify(services, rule, Notification(
            id=f"{SUPERSEDED}:{_subject(record)}", kind=SUPERSEDED, severity="warning",
            title=f"{record['model']} v{record['version']} superseded by v{version}", summary=reason,
            subject=_subject(record),
        ))
        return "superseded", reason, {"superseded_by": version}
    try:
        rollout = engine.start(services, rule, record, cause)
    except engine.RolloutBusy as busy:
        audit(services, cause, _subject(record), "rollout", "waiting", str(busy))
        return None
    return "rolling_out", f"rollout {rollout['id']} started on {rule.rollout.endpoint}", {"rollout": rollout["id"]}


def _newer_version(services: Services, rule: Rule, record: dict) -> tuple[str, str] | None:
    """The newest version of the same model that is newer than `record`'s and waits for, rolls out
    on or serves the rule's endpoint, with where it is; None when there is none (or the versions
    are not numbers, whose order the app does not guess)."""
    from shared.rollout import engine

    plan = rule.rollout
    assert plan is not None
    model, mine = record["model"], record["version"]
    candidates: list[tuple[str, str]] = []
    rollout = services.state.get("rollout", engine.key_for(plan.workspace, plan.endpoint))
    if rollout and rollout.get("model") == model:
        if rollout.get("version") == mine:
            return None  # this version's own rollout started already: let it go on
        if rollout.get("state") in (*engine.ACTIVE, "succeeded"):
            where = "live" if rollout["state"] == "succeeded" else "rolling out"
            candidates.append((str(rollout.get("version")), f"{where} on {plan.endpoint}"))
    champion = services.state.get("champion", rule.name)
    undone = rollout and rollout.get("state") in ("rolled_back", "failed") and rollout.get("version")
    if champion and champion.get("model") == model and champion.get("endpoint") == plan.endpoint \
            and champion.get("version") != undone:  # an undo takes the champion off the endpoint
        candidates.append((str(champion.get("version")), f"serving on {plan.endpoint}"))
    for other in services.state.list("lifecycle", prefix=f"{model}:"):
        if other.get("model") == model and other.get("rule") == rule.name and other.get("stage") in (
                "promoted", "rolling_out"):
            where = "waiting for" if other["stage"] == "promoted" else "rolling out on"
            candidates.append((str(other.get("version")), f"{where} {plan.endpoint}"))
    newer = [(version, where) for version, where in candidates if is_newer(version, mine)]
    return max(newer, key=lambda found: version_order(found[0])) if newer else None


def version_order(version: str) -> tuple[bool, tuple[int, ...], str]:
    """A sort key: numeric versions (`9`, `1.2.10`) by their numbers, after any other version."""
    numbers = tuple(int(part) for part in version.split(".")) if _NUMERIC_VERSION.match(version) else ()
    return bool(numbers), numbers, version


def is_newer(version: str, than: str) -> bool:
    """Whether `version` is a later number than `than`; never for versions that are not numbers."""
    ours, theirs = version_order(version), version_order(than)
    return ours[0] and theirs[0] and ours[1] > theirs[1]


def _move(services: Services, key: str, stage: str, reason: str, extra: dict, cause: str) -> dict:
    def change(record: dict | None) -> dict:
        assert record is not None
        record.update(extra, stage=stage)
        record["history"].append(_entry(stage, cause, reason))
        return record

    updated = services.state.update("lifecycle", key, change)
    audit(services, cause, key, "lifecycle", stage, reason)
    return updated


def set_stage(services: Services, key: str, stage: str, reason: str, cause: str) -> None:
    """Record a stage reached outside this loop (the rollout engine's live / rolled_back)."""
    if services.state.get("lifecycle", key) is not None:
        _move(services, key, stage, reason, {}, cause)


@contextlib.contextmanager
def _exclusive(services: Services, key: str) -> Iterator[None]:
    """One reconciler per model version; another one busy means try again shortly."""
    try:
        with services.state.lease("lifecycle", key, seconds=60):
            yield
    except Conflict as error:
        raise TryLater(f"lifecycle {key} is being reconciled elsewhere") from error


def _notify(services: Services, rule: Rule | None, notification: Notification) -> None:
    notify(services, notification, rule.channels_for(notification.kind) if rule else None)


def notify(services: Services, notification: Notification, channels: list[str] | None) -> None:
    """Tell ops once per decision. A channel that refuses for good is audited, not retried
    forever; a passing failure raises so the work item is retried (sent channels are skipped)."""
    try:
        services.notifier.notify(notification, channels)
    except NotifyError as error:
        if not error.permanent:
            raise
        audit(services, notification.id, notification.subject, "notify", "failed", str(error))


def report_failure(services: Services, scope: str, subject: str, error: BaseException, cause: str) -> None:
    """Record a failure that was isolated (one endpoint's tick, one lifecycle's reconcile) so that the
    others go on: an audit entry and a notification, once per distinct failure (scope, subject, error).
    Never raises: reporting must not stop the others either."""
    reason = f"{type(error).__name__}: {next(iter(str(error).splitlines()), '')}"[:500]
    log.warning("%s %s failed: %s", scope, subject, reason)
    fingerprint = hashlib.sha256(f"{scope}|{subject}|{reason}".encode("utf-8", "replace")).hexdigest()[:32]
    try:
        if services.state.get("failures", fingerprint) is not None:
            return  # recorded and told already
        # Told first: a notification that fails for now is tried again at the next failure (the
        # notifier sends each id once); the marker then makes the audit entry one per failure.
        notify(services, Notification(
            id=f"{FAILED}:{scope}:{fingerprint}", kind=FAILED, severity="error",
            title=f"The {scope} of {subject} failed"[:200], summary=reason, subject=subject or scope,
            facts=(("what", scope), ("subject", subject), ("cause", cause)),
        ), None)
        if services.state.create("failures", fingerprint, {
            "scope": scope, "subject": subject, "reason": reason, "time": now().isoformat(),
        }):
            audit(services, cause, subject, scope, "error", reason)
    except Exception:
        log.exception("could not record the failure of %s %s", scope, subject)


def _subject(record: dict) -> str:
    return key_of(record["model"], record["version"])


def _entry(stage: str, cause: str, reason: str) -> dict[str, str]:
    return {"stage": stage, "time": now().isoformat(), "cause": cause, "reason": reason}


def audit(services: Services, cause: str, subject: str, action: str, outcome: str, reason: str) -> None:
    services.state.audit(AuditEntry(correlation_id=cause, subject=subject, action=action, outcome=outcome,
                                    reason=reason))
