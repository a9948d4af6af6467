"""How the app's decisions are recorded and told: the audit trail, notifications to ops, and
failures that were isolated so that the rest goes on."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Final

from shared.adapters.notify import NotifyError
from shared.bootstrap import Services
from shared.domain.notification import Notification
from shared.domain.people import Person
from shared.domain.records import AuditEntry
from shared.domain.work import FailureReport

FAILED: Final = "work.failed"  # the notification kind of an isolated failure (an incident opened)
RECOVERED: Final = "work.recovered"  # the notification kind of its subject's next success (the incident closed)
MAX_REASONS = 20  # distinct errors an open incident remembers, so that each is audited once
QUIET: Final = timedelta(hours=24)
"""An open incident without a failure for this long is over even if no success closed it (a subject whose
successes are not reported): its next failure opens a new one, told again."""
log = logging.getLogger(__name__)


def audit(services: Services, cause: str, subject: str, action: str, outcome: str, reason: str,
          by: Person | None = None) -> None:
    """Record a decision or action; `by` is the verified person who asked for it, if one did."""
    services.state.audit(AuditEntry(time=services.clock(), correlation_id=cause, subject=subject, action=action,
                                    outcome=outcome, reason=reason, by=by.display if by else None,
                                    by_oid=by.oid if by else None))


def notify(services: Services, notification: Notification, channels: list[str] | None) -> None:
    """Tell ops once per decision. A channel that refuses for good is audited, not retried
    forever; a passing failure raises so the work item is retried (sent channels are skipped)."""
    try:
        services.notifier.notify(notification, channels)
    except NotifyError as error:
        if not error.permanent:
            raise
        audit(services, notification.id, notification.subject, "notify", "failed", str(error))


def notify_for_rule(services: Services, rule_name: str | None, notification: Notification) -> None:
    """Tell the channels the rule names for the notification's kind (every channel without a rule)."""
    rule = services.policy.rule_named(rule_name) if rule_name else None
    notify(services, notification, rule.channels_for(notification.kind) if rule else None)


def report_failure(services: Services, scope: str, subject: str, error: BaseException, cause: str) -> None:
    """Record a failure that was isolated (one endpoint's tick, one lifecycle's reconcile) so that the
    others go on, as an incident of the subject in that scope, whatever the error says.

    The first failure opens the incident: an audit entry, and one notification on each channel. Later
    failures of the open incident are counted, and each distinct error is audited once; nobody is told
    again. The subject's next success closes it (`recovered`). A notification that fails for now is tried
    again at the next failure (the notifier sends each id once). An incident quiet for a day (`QUIET`) is over
    even without a success. Never raises: reporting must not stop the others either."""
    said = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    reason = f"{type(error).__name__}: {said}"[:500]
    log.warning("%s %s failed: %s", scope, subject, reason)
    try:
        _failed(services, scope, subject, reason, cause)
    except Exception:
        log.exception("could not record the failure of %s %s", scope, subject)


def recovered(services: Services, scope: str, subject: str, cause: str) -> None:
    """The subject succeeded in `scope` (a reconcile, a tick): close its open incident, if it has one, with one
    "recovered" notification on each channel that heard it open. Costs one read when there is none. Never
    raises."""
    try:
        _recovered(services, scope, subject, cause)
    except Exception:
        log.exception("could not record the recovery of %s %s", scope, subject)


def incident_key(scope: str, subject: str) -> str:
    """Where the incident of `subject` in `scope` is kept (`records/failures/`): one per subject and scope."""
    return f"incident-{scope}-{_digest(f'{scope}|{subject}')}"


def _failed(services: Services, scope: str, subject: str, reason: str, cause: str) -> None:
    key, heard, now = incident_key(scope, subject), _digest(reason), services.clock()
    seen = {"new": False}

    def change(current: FailureReport | None) -> FailureReport:
        if current is None or current.opened is None or current.closed is not None or now - current.time > QUIET:
            seen["new"] = True
            number = current.incident + 1 if current is not None and current.opened is not None else 1
            return FailureReport(scope=scope, subject=subject, reason=reason, time=now, opened=now, incident=number,
                                 told=False, errors=1, reasons=[heard])
        seen["new"] = heard not in current.reasons
        reasons = [*current.reasons, heard][-MAX_REASONS:] if seen["new"] else current.reasons
        return current.model_copy(update={"reason": reason, "time": now, "errors": current.errors + 1,
                                          "reasons": reasons})

    record = services.state.failure_reports.update(key, change)
    if seen["new"]:
        audit(services, cause, subject, scope, "error", reason)
    if record.told:
        return
    notify(services, Notification(
        id=f"{FAILED}:{scope}:{key.rpartition('-')[2]}:{record.incident}", kind=FAILED, severity="error",
        title=f"The {scope} of {subject} failed"[:200], summary=reason, subject=subject or scope,
        facts=(("what", scope), ("subject", subject), ("cause", cause), ("incident", str(record.incident))),
    ), None)

    def told(current: FailureReport | None) -> FailureReport:
        if current is None or current.incident != record.incident:
            return current or record.model_copy(update={"told": True})
        return current.model_copy(update={"told": True})

    services.state.failure_reports.update(key, told)


def _recovered(services: Services, scope: str, subject: str, cause: str) -> None:
    key = incident_key(scope, subject)
    record = services.state.failure_reports.get(key)
    if record is None or record.opened is None or record.closed is not None:
        return
    since = f"{record.errors} failure{'s' if record.errors != 1 else ''} since {record.opened:%Y-%m-%d %H:%M} UTC"
    if record.told:
        notify(services, Notification(
            id=f"{RECOVERED}:{scope}:{key.rpartition('-')[2]}:{record.incident}", kind=RECOVERED, severity="info",
            title=f"The {scope} of {subject} recovered"[:200],
            summary=f"It succeeded again after {since}; the last error was {record.reason}",
            subject=subject or scope,
            facts=(("what", scope), ("subject", subject), ("cause", cause), ("incident", str(record.incident)),
                   ("failures", str(record.errors))),
        ), None)
    closed = {"now": False}

    def close(current: FailureReport | None) -> FailureReport:
        if current is None or current.incident != record.incident or current.closed is not None:
            closed["now"] = False
            return current or record
        closed["now"] = True
        return current.model_copy(update={"closed": services.clock()})

    services.state.failure_reports.update(key, close)
    if closed["now"]:
        audit(services, cause, subject, scope, "recovered", f"succeeded again after {since}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
