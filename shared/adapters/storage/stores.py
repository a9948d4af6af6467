"""The app's records, one typed store per kind, on the state store (`BlobStateStore`).

`services.state.lifecycles.get(key)` is a `Lifecycle` or None; `put` takes one. Each kind is named
here and nowhere else. A store writes what its model dumps (`model_dump(mode="json")`), which is the
JSON the app always stored, so records stored before still load; one that does not validate raises
`InvalidRecord`, naming its kind, key and what is wrong.

The kinds that are listed (lifecycles, rollouts, the archive, what is set aside) are also kept in the state
index (`shared.adapters.storage.index`) with the fields their listings filter on: a listing is then a query
of the index, a page of it one call, and a write costs one more call. Without an index (the fakes of unit
tests) a listing reads every record, as the app did before the index.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.adapters.storage.index import (
    NEWEST,
    BadToken,
    Field,
    Row,
    TableIndex,
    decode_token,
    encode_token,
    entity,
    first_token,
    newest_entities,
    newest_partition,
    stamp,
)
from shared.adapters.storage.state import LEDGER, BlobStateStore, Doc
from shared.domain import lifecycle as machine
from shared.domain.champions import Champion, ChampionHistory
from shared.domain.discovery import Discovery
from shared.domain.records import AuditEntry, Lifecycle, Rollout, RolloutState
from shared.domain.work import Claim, DeadLetter, FailureReport, LedgerEntry, SetAside, WorkFailure

M = TypeVar("M", bound=BaseModel)
FAILURES = "failures"


Fields = Callable[[M], dict[str, Field]]
"""What a listing of the kind filters on, from a record (the index keeps them beside it)."""


class InvalidRecord(ValueError):
    """A stored document that is not a valid record of its kind: its kind, key and the first field at fault."""

    def __init__(self, message: str, kind: str = "", key: str = "", field: str = "") -> None:
        super().__init__(message)
        self.kind, self.key, self.field = kind, key, field


@dataclass(frozen=True)
class Page(Generic[M]):
    """A page of a listing, and the token of the next one (None: the last)."""

    items: builtins.list[Listed[M]]
    next: str | None


def _no_fields(record: BaseModel) -> dict[str, Field]:
    return {}


@dataclass(frozen=True)
class Listed(Generic[M]):
    """A record as a listing found it: its key, and the record when asked for, so that a record that does
    not load fails alone (the rollout ticks and the resync go on with the others)."""

    key: str
    load: Callable[[], M]


class Store(Generic[M]):
    """The records of one kind, as `model`."""

    def __init__(self, state: BlobStateStore, kind: str, model: type[M], index: TableIndex | None = None,
                 fields: Fields[M] = _no_fields, newest: Callable[[M], datetime] | None = None,
                 summary: Callable[[Doc], Doc] | None = None, group: Callable[[M], str] | None = None) -> None:
        self._state, self.kind, self._model = state, kind, model
        self._index, self._fields, self._newest, self._group = index, fields, newest, group
        """`newest`: the time a kind kept newest first is listed by; `group`: listed newest first per group
        (`newest_page`), not across the kind."""
        self._summary = summary or (lambda document: document)
        """What the index keeps of a record, and so what its listing loads (`get` reads the whole record)."""

    @property
    def indexed(self) -> bool:
        return self._index is not None

    @property
    def grouped(self) -> bool:
        """Whether the kind is listed newest first per group (`newest_page`)."""
        return self._group is not None

    def _group_of(self, record: M) -> str:
        return self._group(record) if self._group else ""

    def _indexed(self, key: str, document: Doc) -> None:
        """Index the record just written (a write that is not a valid record is indexed as invalid)."""
        if self._index is None:
            return
        try:
            record = self._load(key, document)
        except InvalidRecord as error:
            self._index.put(self.kind, key, document, {}, str(error))
            return
        self._index.put(self.kind, key, self._summary(document), self._fields(record),
                        at=stamp(self._newest(record)) if self._newest else None, group=self._group_of(record))

    def get(self, key: str) -> M | None:
        """The record, or None; InvalidRecord when what is stored is not one (nor JSON)."""
        try:
            found = self._state.get(self.kind, key)
        except ValueError as error:
            raise InvalidRecord(f"{self.kind}/{key} is not JSON: {error}", self.kind, key, "record") from error
        return None if found is None else self._load(key, found)

    def read(self, key: str) -> tuple[M, str] | None:
        """The record and its ETag, or None; InvalidRecord when what is stored is not one (nor JSON)."""
        try:
            found = self._state.read(self.kind, key)
        except ValueError as error:
            raise InvalidRecord(f"{self.kind}/{key} is not JSON: {error}", self.kind, key, "record") from error
        return None if found is None else (self._load(key, found[0]), found[1])

    def write(self, key: str, record: M, etag: str | None) -> str:
        """Write the record if it still has `etag` (None: must not exist), else Busy. Returns the new ETag."""
        document = _document(record)
        written = self._state.write(self.kind, key, document, etag)
        self._indexed(key, document)
        return written

    def create(self, key: str, record: M) -> bool:
        """Create the record if absent; False if it exists."""
        document = _document(record)
        created = self._state.create(self.kind, key, document)
        if created:
            self._indexed(key, document)
        return created

    def put(self, key: str, record: M) -> None:
        """Write the record unconditionally (for records with a single writer)."""
        document = _document(record)
        self._state.put(self.kind, key, document)
        self._indexed(key, document)

    def update(self, key: str, change: Callable[[M | None], M]) -> M:
        """Read-modify-write with ETag retries; `change` gets the current record (or None). What it returns
        must load again before it is written."""

        def changed(found: Doc | None) -> Doc:
            document = _document(change(None if found is None else self._load(key, found)))
            self._load(key, document)
            return document

        document = self._state.update(self.kind, key, changed)
        self._indexed(key, document)
        return self._load(key, document)

    def delete(self, key: str) -> None:
        self._state.delete(self.kind, key)
        if self._index is not None:
            self._index.remove(self.kind, key, newest=self._newest is not None)

    def listing(self, prefix: str = "", where: dict[str, Field] | None = None) -> builtins.list[Listed[M]]:
        """Every record whose key starts with `prefix` (and whose fields are `where`), in key order, each
        loaded when asked for. From the index, a document that is not a valid record is listed too (its
        load raises InvalidRecord) when `where` is empty; with `where`, only valid ones match."""
        if self._index is not None:
            return [self._listed(found) for found in self._index.rows(self.kind, where, prefix,
                                                                       invalid=None if not where else False)]
        listed = [Listed(key, functools.partial(self._load, key, found)) for key, found in self._state.items(
            self.kind, prefix)]
        return listed if not where else [matched for item in listed if (matched := self._matching(item, where))]

    def page(self, prefix: str = "", where: dict[str, Field] | None = None, limit: int = 100,
             token: str | None = None) -> Page[M]:
        """A page of `listing`: at most `limit` records from `token` on (None: the first), in key order, each
        loaded when asked for; ValueError naming the token when it is not one a page gave."""
        if self._index is not None:
            rows, following = self._index.page(self.kind, where, prefix, limit, token,
                                               invalid=None if not where else False)
            return Page([self._listed(found) for found in rows], following)
        start = _offset(token)
        every = self.listing(prefix, where)
        return Page(every[start:start + limit], str(start + limit) if start + limit < len(every) else None)

    def newest_page(self, group: str, limit: int = 100, token: str | None = None) -> Page[M]:
        """A page of the group's records, newest first (one index query), each loaded when asked for, from `token`
        on (None, or `first_token`: the first page); BadToken for a token no page of this group gave."""
        if self._index is not None:
            rows, following = self._index.page(newest_partition(self.kind, group), None, "", limit, token,
                                               invalid=None)
            return Page([self._listed(found) for found in rows], following)
        every = []  # every record, in the index's order (the fakes of unit tests)
        for listed in self.listing():
            record = _loaded(listed)
            if record is not None and self._group_of(record) == group:
                at = stamp(self._newest(record)) if self._newest else ""
                every.append((at, listed.key, record))
        every.sort(key=lambda item: item[:2])
        start = _offset(token)
        return Page([_kept(key, record) for _, key, record in every[start:start + limit]],
                    str(start + limit) if start + limit < len(every) else None)

    def first_token(self, group: str) -> str:
        """The token of the group's first page (`newest_page`), for a listing that shows something else first."""
        return first_token(newest_partition(self.kind, group)) if self._index is not None else "0"

    def invalid(self) -> builtins.list[InvalidRecord]:
        """The stored documents of the kind that the index knows are not valid records (none without one)."""
        if self._index is None:
            return []
        return [self._problem(found) for found in self._index.rows(self.kind, invalid=True)]

    def set_invalid(self, error: InvalidRecord) -> None:
        """Keep the document out of the listings that filter (it stays listed as invalid, to be reported)."""
        if self._index is not None:  # the document stays in its blob, for diagnosis
            self._index.put(self.kind, error.key, {}, {}, str(error))

    def listed(self, found: Row) -> Listed[M]:
        """A row of the index as listed: its record loaded when asked for."""
        return self._listed(found)

    def newest_of(self, listed: Listed[M]) -> datetime:
        """When the listed record was set aside (the kinds kept newest first); the oldest time for one that does
        not load."""
        try:
            return self._newest(listed.load()) if self._newest else datetime.min.replace(tzinfo=UTC)
        except InvalidRecord:
            return datetime.min.replace(tzinfo=UTC)

    def _listed(self, found: Row) -> Listed[M]:
        if found.problem is not None:
            return Listed(found.key, functools.partial(_raise, self._problem(found)))  # type: ignore[arg-type]
        if found.doc is None:  # too large for the index: read from its blob
            return Listed(found.key, functools.partial(self._download, found.key))
        return Listed(found.key, functools.partial(self._load, found.key, found.doc))

    def _problem(self, found: Row) -> InvalidRecord:
        try:
            self._load(found.key, found.doc or {})
        except InvalidRecord as error:
            return error
        return InvalidRecord(found.problem or "", self.kind, found.key)

    def _download(self, key: str) -> M:
        record = self.get(key)
        if record is None:
            raise InvalidRecord(f"{self.kind}/{key} is indexed but not stored", self.kind, key, "key")
        return record

    def _matching(self, listed: Listed[M], where: dict[str, Field]) -> Listed[M] | None:
        """The listed record, loaded once, if its fields are `where`; one that does not load is kept, for its
        caller's load to report it (as the index lists an invalid document with `where` empty)."""
        try:
            record = listed.load()
        except InvalidRecord:
            return listed
        fields = self._fields(record)
        if any(fields.get(name) != value for name, value in where.items()):
            return None
        return Listed(listed.key, lambda: record)

    def entities(self, documents: builtins.list[tuple[str, Doc | ValueError]]) -> builtins.list[dict[str, Any]]:
        """The index entities of stored documents (for the first start's indexing)."""
        found = []
        for key, document in documents:
            if isinstance(document, ValueError):
                found.append(entity(self.kind, key, {}, {}, f"{self.kind}/{key} is {document}"))
                continue
            try:
                record = self._load(key, document)
                found.append(entity(self.kind, key, self._summary(document), self._fields(record)))
                if self._newest:
                    found[-1:] = newest_entities(found[-1], self.kind, key, stamp(self._newest(record)),
                                                 self._group_of(record))
            except InvalidRecord as error:
                found.append(entity(self.kind, key, document, {}, str(error)))
        return found

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
            first = error.errors()[0]["loc"] if error.errors() else ()
            field = ".".join(str(part) for part in first) or "record"
            raise InvalidRecord(f"{self.kind}/{key} is not a valid {self._model.__name__}: {error}", self.kind, key,
                                field) from error


def _loaded(listed: Listed[M]) -> M | None:
    """The listed record, or None when it does not load (a listing of everything goes on with the others)."""
    try:
        return listed.load()
    except InvalidRecord:
        return None


def _kept(key: str, record: M) -> Listed[M]:
    """A record loaded already, as listed."""
    return Listed(key, lambda: record)


def _document(record: BaseModel) -> Doc:
    return record.model_dump(mode="json")


def _raise(error: Exception) -> BaseModel:
    raise error


def _audit_cursor(token: str) -> tuple[str, int]:
    found = decode_token("audit", token)
    day, offset = found["PartitionKey"], found["RowKey"]
    if not DAY.fullmatch(day) or not offset.isdigit():
        raise BadToken("not a continuation token this API gave")
    return day, int(offset)


DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _offset(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise BadToken("not a continuation token this API gave")
    return int(token)


def _received(record: SetAside) -> datetime:
    return record.received


def _dead(record: DeadLetter) -> datetime:
    return record.time


def _started(record: Rollout) -> datetime:
    return record.started


def _endpoint(record: Rollout) -> str:
    return record.key


def last_entry(document: Doc) -> Doc:
    """A rollout as listed: its history cut to the last entry (an endpoint's rollout gathers hundreds of
    analyses; a listing shows the last, `get` has them all)."""
    history = document.get("history")
    return {**document, "history": history[-1:]} if isinstance(history, list) else document


def lifecycle_fields(record: Lifecycle) -> dict[str, Field]:
    """What the lifecycle listings filter on: stage, model, rule, and whether the resync reconciles it."""
    return {"stage": record.stage.value, "model": record.model, "rule": record.rule,
            "inflight": machine.watched(record)}


def rollout_fields(record: Rollout) -> dict[str, Field]:
    """What the rollout listings filter on: state, endpoint, and whether the tick takes it (it owns its endpoint,
    or succeeded and its previous deployment is not retired yet)."""
    ticked = (record.state.is_active or record.state is RolloutState.SUCCEEDED) and not record.retired
    return {"state": record.state.value, "endpoint": record.endpoint, "workspace": record.workspace,
            "ticked": ticked}


class Stores:
    """The app's state: a store per kind of record, and the audit trail, on one state store (`blobs`)."""

    def __init__(self, blobs: BlobStateStore, index: TableIndex | None = None) -> None:
        self.blobs, self.index = blobs, index
        self.ledger = Store(blobs, LEDGER, LedgerEntry)
        self.claims = Store(blobs, "claims", Claim)
        self.set_aside = {kind: Store(blobs, kind, SetAside, index, newest=_received)
                          for kind in ("rejected", "ignored")}
        """Events intake set aside, by intake's outcome."""
        self.invalid = Store(blobs, "invalid", SetAside, index, newest=_received)
        """Stored documents that are not valid records, set aside (by `<kind>/<key>`) and left out of listings."""
        self.dead_letters = Store(blobs, "deadletter", DeadLetter, index, newest=_dead)
        # One kind, two records that never share a key: a work item's key, a failure's fingerprint.
        self.work_failures = Store(blobs, FAILURES, WorkFailure)
        self.failure_reports = Store(blobs, FAILURES, FailureReport)
        self.lifecycles = Store(blobs, "lifecycle", Lifecycle, index, lifecycle_fields)
        self.rollouts = Store(blobs, "rollout", Rollout, index, rollout_fields, summary=last_entry)
        """Each endpoint's current (latest) rollout, by endpoint key; listed with its last history entry."""
        self.archived_rollouts = Store(blobs, "rollout-archive", Rollout, index, rollout_fields, newest=_started,
                                       group=_endpoint)
        """The endpoint's rollouts before the current one, by `<endpoint key>.<deployment>.<started>`; listed newest
        first per endpoint (its key) by `newest_page`."""
        self.champions = Store(blobs, "champion", Champion)
        """Each rule's champion, by rule."""
        self.champion_histories = Store(blobs, "champion-history", ChampionHistory)
        self.discoveries = Store(blobs, "discovery", Discovery)
        """Where the resync's listing of each workspace's model versions stands, by workspace."""
        if index is not None:
            index.migrate = self.migrate

    def indexed(self) -> builtins.list[Store[Any]]:
        """The stores the index keeps."""
        stores: builtins.list[Store[Any]] = [
            self.lifecycles, self.rollouts, self.archived_rollouts, self.dead_letters, self.invalid,
            *self.set_aside.values()]
        return [store for store in stores if store.indexed]

    def migrate(self, earlier: str | None = None) -> None:
        """Index every record stored before the index (the first start): per kind, the records' names are
        listed, their documents downloaded concurrently and inserted `BATCH` to a transaction; a record the
        app indexed meanwhile keeps its newer entity. A document that is not a valid record is indexed as
        invalid, to be set aside by the first listing or resync that meets it.

        An index of an `earlier` layout (`index.EARLIER`) gets only what it lacks: the newest-first entities of
        the grouped kinds (each endpoint's archived rollouts), not every kind again."""
        if self.index is None:
            return
        for store in self.indexed():
            if earlier and not store.grouped:
                continue
            for documents in self.blobs.documents(store.kind):
                found = store.entities(documents)
                self.index.add_missing([item for item in found if not earlier or item["PartitionKey"] != store.kind])

    def audit(self, entry: AuditEntry) -> None:
        """Append one entry to the audit trail."""
        self.blobs.audit(entry)

    def set_aside_page(self, kinds: builtins.list[str], limit: int, token: str | None
                       ) -> tuple[builtins.list[tuple[str, Listed[Any]]], str | None]:
        """A page of what is set aside of `kinds` (each kind's store, by kind), newest first across them, with
        each item's kind; and the next page's token. BadToken for a token no page gave."""
        kept: builtins.list[Store[Any]] = [*self.set_aside.values(), self.invalid, self.dead_letters]
        stores = {store.kind: store for store in kept}
        if self.index is None:  # every item, sorted (the fakes of unit tests)
            every = sorted(((stores[kind].newest_of(listed), kind, listed) for kind in kinds
                            for listed in stores[kind].listing()), key=lambda item: item[0], reverse=True)
            start = _offset(token)
            following = str(start + limit) if start + limit < len(every) else None
            return [(kind, listed) for _, kind, listed in every[start:start + limit]], following
        where: dict[str, Field] = {"kind": kinds[0]} if len(kinds) == 1 else {}
        rows, following = self.index.page(NEWEST, where, "", limit, token, invalid=None)
        return [(found.kind, stores[found.kind].listed(found)) for found in rows if found.kind in kinds], following

    def audit_page(self, limit: int, match: Callable[[AuditEntry], bool], since: datetime | None = None,
                   token: str | None = None) -> tuple[builtins.list[AuditEntry], str | None]:
        """The most recent `limit` entries that match, at or after `since`, before the page `token` names
        (None: the newest), oldest first; and the token of the page before (None: none). BadToken for a token
        no page gave."""
        entries, cursor = self.blobs.audit_page(limit, match, since, _audit_cursor(token) if token else None)
        return entries, encode_token("audit", {"PartitionKey": cursor[0], "RowKey": str(cursor[1])}) if cursor else None

    def read_audit(self, days: builtins.list[str] | None = None) -> builtins.list[AuditEntry]:
        """Audit entries of the given days (`YYYY-MM-DD`), or of every day, oldest first."""
        return self.blobs.read_audit(days)
