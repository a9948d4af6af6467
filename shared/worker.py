"""The queue worker: runs the reaction to one queued event, and records dead letters."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.bootstrap import Services
from shared.events import AmlEvent, parse_event
from shared.storage.state import AuditEntry, now


def process(item: dict[str, Any], services: Services, attempt: int = 1) -> None:
    """Run the reaction to a queued event. Exceptions propagate so the queue retries it."""
    raw = item.get("event")
    event_id = str(raw.get("id", "")) if isinstance(raw, dict) else ""
    try:
        react(parse_event(raw), services)
    except Exception as error:
        reason = f"attempt {attempt}: {type(error).__name__}: {error}"
        services.state.put(
            "failures", str(item.get("key")), {"event_id": event_id, "error": reason, "time": now().isoformat()}
        )
        services.state.audit(
            AuditEntry(
                correlation_id=event_id or str(item.get("key")),
                subject=str(raw.get("subject", "")) if isinstance(raw, dict) else "",
                action="react",
                outcome="error",
                reason=reason,
            )
        )
        raise


def react(event: AmlEvent, services: Services) -> None:
    from shared import reactions

    reactions.react(event, services)


def dead_letter(body: bytes, dequeue_count: int, services: Services) -> str:
    """Keep a message that failed every attempt, with its last error, for replay; return its key."""
    text = body.decode("utf-8", errors="replace")
    try:
        item = json.loads(text)
        key, event_id = str(item["key"]), str(item["event"].get("id", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        item, key, event_id = None, "unreadable-" + hashlib.sha256(body).hexdigest()[:32], ""
    failure = services.state.get("failures", key) if item else None
    reason = failure["error"] if failure else "the message could not be read as a work item"
    services.state.put(
        "deadletter",
        key,
        {"message": text, "dequeue_count": dequeue_count, "reason": reason, "time": now().isoformat()},
    )
    services.state.audit(
        AuditEntry(
            correlation_id=event_id or key,
            subject="aml-work",
            action="dead-letter",
            outcome="poisoned",
            reason=f"failed {dequeue_count} times; last error: {reason}",
        )
    )
    return key
