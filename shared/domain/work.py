"""The work the queue carries, and what the app keeps about it: the work item, the ledger entry that claims
an event once, the claim check of an event too large for a queue message, events set aside, dead letters
and failures.

Plain documents, typed: each keeps the fields (and the times, as `Timestamp`) the app always stored, so
documents stored before still load. `shared.adapters.storage.stores` keeps each kind.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from shared.domain.records import Record, Timestamp


class WorkItem(BaseModel):
    """One message of the work queue: an event to react to, under its ledger key.

    An event too large for a queue message is kept as a claim check (`Claim`): the item then names it in
    `claim`, and `event` holds only the event's id and subject, for error records and dead letters.
    """

    model_config = ConfigDict(extra="allow")

    key: str = Field(description="the event's ledger key")
    event: dict[str, Any] = Field(description="the event as delivered, or its id and subject under a claim check")
    claim: str | None = Field(None, description="the key of the claim check that keeps the event")
    traceparent: str | None = Field(None, description="the intake's trace context (W3C), when telemetry is on")
    redeliveries: int = Field(0, description="times the worker put it back on the queue after contention")
    delivery: str | None = Field(None, description="the id intake gave this delivery of the event: the worker claims "
                                 "the event's ledger entry for it (None: claimed by intake before the item was queued)")
    received: Timestamp | None = Field(None, description="when intake received the event")

    @classmethod
    def read(cls, message: str) -> WorkItem | None:
        """The work item a queue message's text holds, or None when it holds none."""
        try:
            return cls.model_validate_json(message)
        except ValidationError:
            return None

    @property
    def event_id(self) -> str:
        return str(self.event.get("id", ""))

    @property
    def subject(self) -> str:
        return str(self.event.get("subject", ""))

    def message(self) -> dict[str, Any]:
        """The queue message: the fields that are set, as they always were (a first delivery has no
        `redeliveries`, an item without a claim check no `claim`)."""
        return self.model_dump(mode="json", exclude_defaults=True)


class LedgerEntry(Record):
    """An event claimed for one delivery of it: another delivery of the same event finds it and is a duplicate."""

    event_id: str
    type: str
    subject: str
    received: Timestamp
    delivery: str | None = Field(None, description="the delivery that claimed it (`WorkItem.delivery`); a retry "
                                 "of that delivery finds its own claim. None: claimed by intake (before the worker "
                                 "claimed events)")

    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An entry intake claimed (no `delivery`) is written as it always was."""
        document: dict[str, Any] = handler(self)
        if self.delivery is None:
            document.pop("delivery", None)
        return document


class Claim(Record):
    """A claim check: an event too large for a queue message, kept until its work item is handled."""

    event: dict[str, Any]
    received: Timestamp


class SetAside(Record):
    """An event intake will not process (rejected: malformed; ignored: a type the app does not handle),
    kept as received (made storable) with the reason, for diagnosis or replay."""

    reason: str
    received: Timestamp
    event: Any


class DeadLetter(Record):
    """A queue message that failed every attempt, kept as it was with its last error, for replay."""

    message: str = Field(description="the message's text")
    dequeue_count: int
    reason: str
    time: Timestamp

    def work_item(self) -> WorkItem | None:
        """The work item the message was, or None when it is not a readable one."""
        return WorkItem.read(self.message)


class WorkFailure(Record):
    """A work item's last error (under the item's key): its dead letter says why, if it comes to that."""

    event_id: str
    error: str
    time: Timestamp


class FailureReport(Record):
    """An incident: a subject's failure isolated so that the rest went on (one endpoint's tick, one lifecycle's
    reconcile), kept under its scope and subject (`shared.reactor.outcomes.report_failure`), whatever the errors
    say. It opens at the first failure (ops are told once), counts the failures that follow (each distinct
    error audited, nobody told) and closes at the subject's next success (ops are told it recovered).

    Reports kept before incidents (under a fingerprint of scope, subject and error) load too: no `opened`."""

    scope: str
    subject: str
    reason: str = Field(description="the last error")
    time: Timestamp = Field(description="when the last error happened")
    opened: Timestamp | None = Field(None, description="when the incident opened")
    closed: Timestamp | None = Field(None, description="when the subject succeeded again; None while open")
    incident: int = Field(1, description="the how-manyth incident of this subject and scope (numbers its notices)")
    told: bool = Field(True, description="whether ops were told it opened (a failed notice is tried again)")
    errors: int = Field(1, description="failures since it opened")
    reasons: list[str] = Field(default_factory=list, description="digests of the distinct errors audited")

    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A report kept before incidents (no `opened`) is written back as it was, without the incident's fields."""
        document: dict[str, Any] = handler(self)
        if self.opened is None:
            for name in INCIDENT_FIELDS:
                document.pop(name, None)
        return document


INCIDENT_FIELDS = ("opened", "closed", "incident", "told", "errors", "reasons")
