"""The notification: one message to ops about one decision, whatever the channel.

Channels render it their own way (an Adaptive Card, Slack blocks, a signed JSON
document, a CloudEvent, a log line); the reactions only build this model.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal[
    "model.tested",
    "model.promoted",
    "model.rejected",
    "model.deployed",
    "rollout.started",
    "rollout.step",
    "rollout.completed",
    "rollout.rolled_back",
    "retraining.started",
    "job.failed",
    "drift.detected",
]
Severity = Literal["info", "warning", "error"]

# The id names a delivery record (`<id>.<channel>`) in the state store, so it keeps to
# the characters `shared.storage.state.blob_path` accepts.
NOTIFICATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=@-]{0,180}$")


class Table(BaseModel):
    """A small table, such as the gate table: gate, metric, value, threshold, result."""

    model_config = ConfigDict(frozen=True)

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...] = ()

    @model_validator(mode="after")
    def _rows_fit_header(self) -> Table:
        if not self.header:
            raise ValueError("a table needs a header")
        for number, row in enumerate(self.rows, start=1):
            if len(row) != len(self.header):
                raise ValueError(f"table row {number} has {len(row)} cells, the header has {len(self.header)}")
        return self


class Notification(BaseModel):
    """One decision, told to ops.

    `id` is the decision's deterministic id chosen by the caller (for example
    `model.rejected:credit-risk:3`): the same decision always gets the same id, which is
    how a redelivered event sends nothing twice.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Kind
    title: str = Field(min_length=1, max_length=200)
    summary: str = ""
    severity: Severity = "info"
    subject: str = Field(min_length=1, description="the model, endpoint or job it is about, e.g. credit-risk:3")
    facts: tuple[tuple[str, str], ...] = ()
    table: Table | None = None
    link: str | None = None
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not NOTIFICATION_ID.match(value) or ".." in value:
            raise ValueError(f"notification id {value!r} must match {NOTIFICATION_ID.pattern} without '..'")
        return value

    @field_validator("link")
    @classmethod
    def _check_link(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"link {value!r} is not an http(s) URL")
        return value

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def document(self) -> dict[str, object]:
        """The notification as plain JSON data, the same for every channel that sends data."""
        document = self.model_dump(mode="json")
        document["facts"] = [{"name": name, "value": value} for name, value in self.facts]
        return document
