"""Microsoft Teams through a Workflows (Power Automate) webhook: one Adaptive Card message.

The "Send webhook alerts to a channel" workflow takes a message activity whose single
attachment is an Adaptive Card; Workflows render Adaptive Cards only (not the retired
connector MessageCard). Version 1.4 keeps to elements every Teams client renders, so
the table is a ColumnSet per row rather than the 1.5 Table element.
"""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.notify.delivery import HttpChannel
from shared.domain.notification import Notification

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
COLOR = {"info": "Default", "warning": "Warning", "error": "Attention"}


class TeamsChannel(HttpChannel):
    """Posts an Adaptive Card to a Teams Workflows webhook URL."""

    name = "teams"
    setting = "MLOPS_NOTIFY_TEAMS_URL"

    def send(self, notification: Notification) -> None:
        self.post(json.dumps(message(notification)).encode())


def message(notification: Notification) -> dict[str, Any]:
    """The Workflows webhook payload: a message with one Adaptive Card attachment."""
    attachment = {"contentType": CONTENT_TYPE, "contentUrl": None, "content": card(notification)}
    return {"type": "message", "attachments": [attachment]}


def card(notification: Notification) -> dict[str, Any]:
    """The Adaptive Card: title, kind and subject, summary, facts, table, a link to open."""
    n = notification
    body: list[dict[str, Any]] = [
        _text(n.title, id="title", size="Large", weight="Bolder", color=COLOR[n.severity]),
        _text(f"{n.kind} · {n.subject} · {n.time:%Y-%m-%d %H:%M} UTC", id="meta", isSubtle=True, spacing="None"),
    ]
    if n.summary:
        body.append(_text(n.summary, id="summary"))
    if n.facts:
        body.append({"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in n.facts]})
    if n.table:
        body.append(_row(n.table.header, header=True))
        body.extend(_row(row) for row in n.table.rows)
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    if n.link:
        content["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": n.link}]
    return content


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _row(cells: tuple[str, ...], header: bool = False) -> dict[str, Any]:
    weight = {"weight": "Bolder"} if header else {}
    return {
        "type": "ColumnSet",
        "separator": header,
        "spacing": "Medium" if header else "None",
        "columns": [
            {"type": "Column", "width": "stretch", "items": [_text(cell, **weight)]} for cell in cells
        ],
    }
