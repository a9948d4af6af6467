"""The notification: one message to ops about one decision, whatever the channel.

Channels render it their own way (an Adaptive Card, Slack blocks, a signed JSON
document, a CloudEvent, a log line); the reactions only build this model.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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
    "model.superseded",
    "model.awaiting_review",
    "model.expired",
    "rollout.awaiting_approval",
    "rollout.holding",
    "rollout.failed",
    "work.failed",
    "work.recovered",
]
Severity = Literal["info", "warning", "error"]

MAX_ID = 180
MAX_TITLE = 200
MAX_SUMMARY = 2000
MAX_SUBJECT = 200
ELLIPSIS = "…"


def cut(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when it is longer."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def short_id(value: str) -> str:
    """The id, or for one longer than MAX_ID bytes (UTF-8), its start and a hash of all of it.

    The id names a delivery record (`<id>.<channel>`) in the state store, which encodes any
    character, so only its length matters (in bytes: each is at most 3 characters encoded);
    the hash, the same every time, keeps two long ids apart.
    """
    data = value.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_ID:
        return value
    digest = hashlib.sha256(data).hexdigest()[:32]
    start = data[: MAX_ID - len(digest) - 1].decode("utf-8", "ignore")  # never half a character
    return f"{start}~{digest}"


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
    title: str = Field(min_length=1, max_length=MAX_TITLE, description=f"cut to {MAX_TITLE} characters with '…'")
    summary: str = Field("", max_length=MAX_SUMMARY, description=f"cut to {MAX_SUMMARY} characters with '…'")
    severity: Severity = "info"
    subject: str = Field(
        min_length=1, max_length=MAX_SUBJECT, description="the model, endpoint or job it is about, e.g. credit-risk:3"
    )
    facts: tuple[tuple[str, str], ...] = ()
    table: Table | None = None
    link: str | None = None
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not value:
            raise ValueError("a notification id must not be empty")
        return short_id(value)

    @field_validator("title", "summary", "subject", mode="before")
    @classmethod
    def _cut(cls, value: object, info: ValidationInfo) -> object:
        """Texts come from event data (model and service names): cut, never refused, so the decision is told."""
        if not isinstance(value, str):
            return value
        if info.field_name == "subject" and not value.strip():
            return "-"
        limit = {"title": MAX_TITLE, "summary": MAX_SUMMARY, "subject": MAX_SUBJECT}[str(info.field_name)]
        return cut(value, limit)

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
