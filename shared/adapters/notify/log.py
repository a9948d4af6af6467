"""The log channel: always on, so every notification is at least in the app's logs."""

from __future__ import annotations

import logging

from shared.domain.notification import Notification

LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogChannel:
    """Logs one line per notification on the `aml_reactor.notify` logger."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("aml_reactor.notify")

    def send(self, notification: Notification) -> None:
        level = LEVEL[notification.severity]
        self._logger.log(level, "%s", line(notification), extra={"notification_id": notification.id})


def line(notification: Notification) -> str:
    """`[model.rejected] credit-risk:3: title - summary | name=value, ... | col=cell col=cell; ...`."""
    n = notification
    parts = [f"[{n.kind}] {n.subject}: {n.title}" + (f" - {n.summary}" if n.summary else "")]
    if n.facts:
        parts.append(", ".join(f"{name}={value}" for name, value in n.facts))
    if n.table:
        header = n.table.header
        parts.append("; ".join(" ".join(f"{h}={c}" for h, c in zip(header, row, strict=True)) for row in n.table.rows))
    if n.link:
        parts.append(n.link)
    return " | ".join(parts)
