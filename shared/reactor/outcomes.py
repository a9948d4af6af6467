"""How the app's decisions are recorded and told: the audit trail, notifications to ops, and
failures that were isolated so that the rest goes on."""

from __future__ import annotations

import hashlib
import logging
from typing import Final

from shared.adapters.notify import NotifyError
from shared.bootstrap import Services
from shared.domain.notification import Notification
from shared.domain.people import Person
from shared.domain.records import AuditEntry
from shared.domain.work import FailureReport

FAILED: Final = "work.failed"  # the notification kind of an isolated failure
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
    others go on: an audit entry and a notification, once per distinct failure (scope, subject, error).
    Never raises: reporting must not stop the others either."""
    said = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    reason = f"{type(error).__name__}: {said}"[:500]
    log.warning("%s %s failed: %s", scope, subject, reason)
    fingerprint = hashlib.sha256(f"{scope}|{subject}|{reason}".encode("utf-8", "replace")).hexdigest()[:32]
    try:
        if services.state.failure_reports.get(fingerprint) is not None:
            return  # recorded and told already
        # Told first: a notification that fails for now is tried again at the next failure (the
        # notifier sends each id once); the marker then makes the audit entry one per failure.
        notify(services, Notification(
            id=f"{FAILED}:{scope}:{fingerprint}", kind=FAILED, severity="error",
            title=f"The {scope} of {subject} failed"[:200], summary=reason, subject=subject or scope,
            facts=(("what", scope), ("subject", subject), ("cause", cause)),
        ), None)
        if services.state.failure_reports.create(fingerprint, FailureReport(
            scope=scope, subject=subject, reason=reason, time=services.clock(),
        )):
            audit(services, cause, subject, scope, "error", reason)
    except Exception:
        log.exception("could not record the failure of %s %s", scope, subject)
