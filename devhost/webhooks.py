"""The extension webhooks of the Functions host: Event Grid and Event-Grid-sourced blobs.

Faithful to the host: `aeg-event-type: SubscriptionValidation` is answered with the
validation code; CloudEvents' abuse-protection `OPTIONS` with `WebHook-Allowed-Origin`;
a notification body is a JSON array (or one CloudEvent), one invocation per element,
202 when every invocation succeeded and 500 when any failed (Event Grid redelivers).
A body that is not an array of JSON objects is refused with 400 (not retried).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("devhost.webhooks")


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: object) -> Reply:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    @classmethod
    def text(cls, status: int, message: str) -> Reply:
        return cls(status, message.encode(), {"Content-Type": "text/plain; charset=utf-8"})


def abuse_protection(headers: dict[str, str]) -> Reply:
    """CloudEvents 1.0 webhook validation: allow the origin that asks."""
    origin = headers.get("webhook-request-origin", "")
    if not origin:
        return Reply.text(400, "OPTIONS without WebHook-Request-Origin")
    return Reply(200, b"", {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"})


def deliver(headers: dict[str, str], body: bytes, invoke: Callable[[dict[str, Any]], None]) -> Reply:
    """Handle one webhook POST; `invoke` runs the function for one event object."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return Reply.text(400, "request body is not JSON")
    events = payload if isinstance(payload, list) else [payload]
    if not events or not all(isinstance(event, dict) for event in events):
        return Reply.text(400, "expected a JSON array of event objects")
    kind = headers.get("aeg-event-type", "Notification")
    if kind == "SubscriptionValidation":
        data = events[0].get("data")
        code = data.get("validationCode") if isinstance(data, dict) else None
        if not code:
            return Reply.text(400, "SubscriptionValidation event without data.validationCode")
        return Reply.json(200, {"validationResponse": code})
    if kind not in ("Notification", "Unsubscribe"):
        return Reply.text(400, f"unknown aeg-event-type {kind!r}")
    failures = 0
    for event in events:
        try:
            invoke(event)
        except Exception:
            failures += 1
            log.exception("invocation failed for event %s", event.get("id"))
    if failures:
        return Reply.text(500, f"{failures} of {len(events)} invocations failed")
    return Reply(202)
