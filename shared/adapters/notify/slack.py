"""Slack through an incoming webhook: Block Kit blocks with a plain-text fallback.

Slack shows `text` in notifications and where blocks cannot render. Block limits are
kept (header 150 characters, section text 3000, 10 fields a section), so a long
notification is cut rather than refused with `invalid_blocks`.
"""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.notify.delivery import HttpChannel
from shared.domain.notification import Notification, Table

ICON = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}


class SlackChannel(HttpChannel):
    """Posts blocks to a Slack incoming webhook URL."""

    name = "slack"
    setting = "MLOPS_NOTIFY_SLACK_URL"

    def send(self, notification: Notification) -> None:
        self.post(json.dumps(message(notification)).encode())


def message(notification: Notification) -> dict[str, Any]:
    """The webhook payload: `text` (the fallback) and `blocks`."""
    n = notification
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": "title", "text": {"type": "plain_text", "text": n.title[:150]}},
        {
            "type": "context",
            "block_id": "meta",
            "elements": [
                {"type": "mrkdwn", "text": f"{n.kind} · {_escape(n.subject)} · {n.time:%Y-%m-%d %H:%M} UTC"}
            ],
        },
    ]
    if n.summary:
        blocks.append(_section("summary", f"{ICON[n.severity]} {_escape(n.summary)}"))
    for start in range(0, len(n.facts), 10):
        chunk = n.facts[start : start + 10]
        fields = [{"type": "mrkdwn", "text": f"*{_escape(k)}*\n{_escape(v)}"[:2000]} for k, v in chunk]
        blocks.append({"type": "section", "block_id": f"facts-{start // 10}", "fields": fields})
    if n.table:
        blocks.append(_section("table", f"```{_escape(table_text(n.table))}```"))
    if n.link:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": n.link}
        blocks.append({"type": "actions", "block_id": "link", "elements": [button]})
    fallback = f"{n.title}: {n.summary}" if n.summary else n.title
    return {"text": fallback, "blocks": blocks}


def table_text(table: Table) -> str:
    """The table as aligned plain-text columns (for a monospace block)."""
    rows = [table.header, *table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.header))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _section(block_id: str, text: str) -> dict[str, Any]:
    if len(text) > 3000:
        text = text[:2990] + "…" + ("```" if text.startswith("```") else "")
    return {"type": "section", "block_id": block_id, "text": {"type": "mrkdwn", "text": text}}


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
