"""What can go wrong with a scoring job, split by how the caller must react."""

from __future__ import annotations


class ScoringError(Exception):
    """The job cannot succeed as asked (bad request, input or model); retrying will not help."""


class InvalidInput(ScoringError):
    """The input file or the model does not fit the request; the message names what and where."""


class HandoffFailed(ScoringError):
    """The input is above the hand-off size and the Azure ML batch endpoint did not take it."""


class TooManyBadRows(ScoringError):
    """More rows than the configured share could not be parsed; they are in the errors file."""


class RowError:
    """One unparsable row: its 1-based data row number (header excluded) and why."""

    __slots__ = ("reason", "row", "text")

    def __init__(self, row: int, reason: str, text: str = "") -> None:
        self.row = row
        self.reason = reason
        self.text = text[:200]

    def to_doc(self) -> dict[str, object]:
        return {"row": self.row, "reason": self.reason, "text": self.text}
