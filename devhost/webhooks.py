"""The extension webhooks of the Functions host: Event Grid and Event-Grid-sourced blobs.

Faithful to the host: `aeg-event-type: SubscriptionValidation` is answered with the
validation code; CloudEvents' abuse-protection `OPTIONS` with `WebHook-Allowed-Origin`;
a notification body is a JSON array (or one CloudEvent), one invocation per element,
202 when every invocation succeeded and 500 when any failed (Event Grid redelivers).
The elements of an array run concurrently, as the extension starts them all and awaits them
together (`ProcessEventsAsync` in Azure/azure-sdk-for-net,
sdk/eventgrid/Microsoft.Azure.WebJobs.Extensions.EventGrid/src/Config/EventGridExtensionConfigProvider.cs),
on the Python worker's thread pool for synchronous functions (the caller's `pool`).
A body that is not an array of JSON objects is refused with 400 (not retried).

A body nested deeper than Python's JSON parser goes (about 990 levels: its recursion limit)
is still read: what lies deeper than `KEEP_DEPTH` levels is cut and replaced by a note, so that
each event reaches the function, whose intake rejects it naming the field that nests too deep
(and keeps it in `records/rejected/`), instead of the whole delivery being a 400.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("devhost.webhooks")
KEEP_DEPTH = 200  # levels kept of a body the parser cannot read whole; far below the recursion limit
DEEPER = json.dumps(f"(nested deeper than {KEEP_DEPTH} levels: cut by the local host)").encode()
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


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


def deliver(headers: dict[str, str], body: bytes, invoke: Callable[[dict[str, Any]], None],
            pool: Executor | None = None) -> Reply:
    """Handle one webhook POST; `invoke` runs the function for one event object, on `pool` when there are several."""
    try:
        payload = parse(body)
    except (ValueError, RecursionError):
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

    def succeeds(event: dict[str, Any]) -> bool:
        try:
            invoke(event)
        except Exception:
            log.exception("invocation failed for event %s", event.get("id"))
            return False
        return True

    runs = pool.map(succeeds, events) if pool is not None and len(events) > 1 else map(succeeds, events)
    failures = sum(not succeeded for succeeded in runs)
    if failures:
        return Reply.text(500, f"{failures} of {len(events)} invocations failed")
    return Reply(202)


def parse(body: bytes) -> Any:
    """The JSON body; one nested deeper than the parser goes is read with its deepest levels cut (`cut`)."""
    try:
        return json.loads(body)
    except RecursionError:
        return json.loads(cut(body, KEEP_DEPTH))


def cut(body: bytes, keep: int) -> bytes:
    """The JSON text with every array or object deeper than `keep` levels replaced by the `DEEPER` note.
    Strings are skipped whole (a bracket in one is text); an unbalanced body stays unbalanced (not JSON)."""
    kept: list[bytes] = []
    depth, start, cutting = 0, 0, -1
    for token in _TOKENS.finditer(body):
        bracket = token.group()
        if bracket[:1] == b'"':
            continue
        if bracket in (b"[", b"{"):
            depth += 1
            if depth == keep + 1:
                kept.append(body[start:token.start()])
                cutting = token.start()
        else:
            if depth == keep + 1 and cutting >= 0:
                kept.append(DEEPER)
                start, cutting = token.end(), -1
            depth -= 1
    kept.append(body[cutting if cutting >= 0 else start:])
    return b"".join(kept)
