"""The app's records, one typed store per kind, on the state store (`BlobStateStore`).

`services.state.lifecycles.get(key)` is a `Lifecycle` or None; `put` takes one. Each kind is named
here and nowhere else. A store writes what its model dumps (`model_dump(mode="json")`), which is the
JSON the app always stored, so records stored before still load; one that does not validate raises
`InvalidRecord`, naming its kind, key and what is wrong.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.adapters.storage.state import LEDGER, BlobStateStore, Doc
from shared.domain.champions import Champion, ChampionHistory
from shared.domain.discovery import Discovery
from shared.domain.records import AuditEntry, Lifecycle, Rollout
from shared.domain.work import Claim, DeadLetter, FailureReport, LedgerEntry, SetAside, WorkFailure

M = TypeVar("M", bound=BaseModel)
FAILURES = "failures"


class InvalidRecord(ValueError):
    """A stored document that is not a valid record of its kind."""


@dataclass(frozen=True)
class Listed(Generic[M]):
    """A record as a listing found it: its key, and the record when asked for, so that a record that does
    not load fails alone (the rollout ticks and the resync go on with the others)."""

    key: str
    load: Callable[[], M]


class Store(Generic[M]):
    """The records of one kind, as `model`."""

    def __init__(self, state: BlobStateStore, kind: str, model: type[M]) -> None:
        self._state, self.kind, self._model = state, kind, model

    def get(self, key: str) -> M | None:
        found = self._state.get(self.kind, key)
        return None if found is None else self._load(key, found)

    def read(self, key: str) -> tuple[M, str] | None:
        """The record and its ETag, or None."""
        found = self._state.read(self.kind, key)
        return None if found is None else (self._load(key, found[0]), found[1])

    def write(self, key: str, record: M, etag: str | None) -> str:
        """Write the record if it still has `etag` (None: must not exist), else Busy. Returns the new ETag."""
        return self._state.write(self.kind, key, _document(record), etag)

    def create(self, key: str, record: M) -> bool:
        """Create the record if absent; False if it exists."""
        return self._state.create(self.kind, key, _document(record))

    def put(self, key: str, record: M) -> None:
        """Write the record unconditionally (for records with a single writer)."""
        self._state.put(self.kind, key, _document(record))

    def update(self, key: str, change: Callable[[M | None], M]) -> M:
        """Read-modify-write with ETag retries; `change` gets the current record (or None). What it returns
        must load again before it is written."""

        def changed(found: Doc | None) -> Doc:
            document = _document(change(None if found is None else self._load(key, found)))
            self._load(key, document)
            return document

        return self._load(key, self._state.update(self.kind, key, changed))

    def delete(self, key: str) -> None:
        self._state.delete(self.kind, key)

    def listing(self, prefix: str = "") -> builtins.list[Listed[M]]:
        """Every record whose key starts with `prefix`, in key order, each loaded when asked for."""
        return [Listed(key, functools.partial(self._load, key, found)) for key, found in self._state.items(
            self.kind, prefix)]

    def items(self, prefix: str = "") -> builtins.list[tuple[str, M]]:
        """Every record whose key starts with `prefix`, with its key, in key order."""
        return [(listed.key, listed.load()) for listed in self.listing(prefix)]

    def list(self, prefix: str = "") -> builtins.list[M]:
        """Every record whose key starts with `prefix`, in key order."""
        return [listed.load() for listed in self.listing(prefix)]

    def lease(self, key: str, seconds: int = 60,
              wait_seconds: float = 0) -> contextlib.AbstractContextManager[None]:
        """Hold the record's lease (one writer); Busy if another holds it for longer than `wait_seconds`."""
        return self._state.lease(self.kind, key, seconds=seconds, wait_seconds=wait_seconds)

    def _load(self, key: str, found: Doc) -> M:
        try:
            return self._model.model_validate(found)
        except ValidationError as error:
            raise InvalidRecord(f"{self.kind}/{key} is not a valid {self._model.__name__}: {error}") from error


def _document(record: BaseModel) -> Doc:
    return record.model_dump(mode="json")


class Stores:
    """The app's state: a store per kind of record, and the audit trail, on one state store (`blobs`)."""

    def __init__(self, blobs: BlobStateStore) -> None:
        self.blobs = blobs
        self.ledger = Store(blobs, LEDGER, LedgerEntry)
        self.claims = Store(blobs, "claims", Claim)
        self.set_aside = {kind: Store(blobs, kind, SetAside) for kind in ("rejected", "ignored")}
        """Events intake set aside, by intake's outcome."""
        self.dead_letters = Store(blobs, "deadletter", DeadLetter)
        # One kind, two records that never share a key: a work item's key, a failure's fingerprint.
        self.work_failures = Store(blobs, FAILURES, WorkFailure)
        self.failure_reports = Store(blobs, FAILURES, FailureReport)
        self.lifecycles = Store(blobs, "lifecycle", Lifecycle)
        self.rollouts = Store(blobs, "rollout", Rollout)
        """Each endpoint's current (latest) rollout, by endpoint key."""
        self.archived_rollouts = Store(blobs, "rollout-archive", Rollout)
        """The endpoint's rollouts before the current one, by `<endpoint key>.<deployment>.<started>`."""
        self.champions = Store(blobs, "champion", Champion)
        """Each rule's champion, by rule."""
        self.champion_histories = Store(blobs, "champion-history", ChampionHistory)
        self.discoveries = Store(blobs, "discovery", Discovery)
        """Where the resync's listing of each workspace's model versions stands, by workspace."""

    def audit(self, entry: AuditEntry) -> None:
        """Append one entry to the audit trail."""
        self.blobs.audit(entry)

    def read_audit(self, days: builtins.list[str] | None = None) -> builtins.list[AuditEntry]:
        """Audit entries of the given days (`YYYY-MM-DD`), or of every day, oldest first."""
        return self.blobs.read_audit(days)
