"""The state index: one Azure Table Storage entity per listed record, so that a listing is one query.

The records stay in Blob Storage (`state.BlobStateStore`), the one source of truth, written under ETags and
leases. Each record of a listed kind also has an entity here (PartitionKey: the kind; RowKey: the key, encoded
as a blob name part is), written after its blob, holding:

- the fields a listing filters on (a lifecycle's `stage`, `model`, `rule`, `inflight`; a rollout's `state`,
  `endpoint`, `ticked`), as the store's `fields` gives them;
- the record's JSON, cut in `doc0`..`docN` properties (a property holds 64 KiB, an entity 1 MiB); a record
  larger than `MAX_PARTS` pieces keeps none, and its listing downloads it;
- `invalid`: True for a stored document that is not a valid record (with `problem`, what is wrong), which
  the app sets aside.

So "the lifecycles in flight", "the versions of a model / stage / rule", "the active rollouts" are each one
query (a page holds up to 1,000 entities), and a page of a listing is one call, whatever the total.
Why tables and not blob index tags: `docs/state.md` (measured).

Existing state is indexed on the first start (`ready`): a marker entity says the index is complete.

The kinds kept newest first have a second entity per record, its RowKey the time inverted (`stamp`): in the
`~newest` partition across kinds (what is set aside), or in a partition of their own group (`newest_partition`:
each endpoint's archived rollouts, its history), so that a page of them, newest first, is one query.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.adapters.storage.state import decode_part, encode_part

Field = str | bool
PIECE = 30_000
"""Characters of the record's JSON (ASCII: `json.dumps` escapes the rest) in one property: 60 KB as UTF-16,
under the 64 KiB a string property holds."""
MAX_PARTS = 15  # 15 x 60 KB stays under the 1 MiB of an entity with its other properties
BATCH = 100  # operations in one entity group transaction, Azure's limit
META = "~meta"
LAYOUT = "layout-2"
"""The marker of an index complete for the records stored before it (`ready`). Layout 2 added the newest-first
entities of grouped kinds (each endpoint's archived rollouts); an index of `EARLIER` gets only what it lacks."""
EARLIER = "layout-1"
MAX_PAGE = 1000  # entities in one query answer, Azure's limit
NEWEST = "~newest"
"""The partition that lists the kinds kept newest first (what is set aside): a second entity per record, its
RowKey the time inverted (`stamp`), then the kind and key."""


def newest_partition(kind: str, group: str = "") -> str:
    """The partition that lists a kind's records newest first: `NEWEST`, or one per group of the kind (an
    endpoint's archived rollouts)."""
    return f"{NEWEST}~{kind}~{encode_part(group)}" if group else NEWEST


def stamp(moment: datetime) -> str:
    """A RowKey prefix that sorts newer times first (milliseconds before year 2286, inverted)."""
    return f"{10**13 - int(moment.timestamp() * 1000):013d}"


class BadToken(ValueError):
    """A continuation token this index did not give (or not for this listing)."""


@dataclass(frozen=True)
class Row:
    """One indexed record: its key, its document (None when too large to keep: read the blob) and, for a stored
    document that is not a valid record, what is wrong with it."""

    key: str
    doc: dict[str, Any] | None
    problem: str | None = None
    kind: str = ""


def table_name(container: str) -> str:
    """The index's table for the state container (a table name is 3-63 letters and digits, a letter first)."""
    name = "".join(character for character in container if character.isalnum())
    return f"x{name}index"[:63] if not name[:1].isalpha() else f"{name}index"[:63]


def entity(kind: str, key: str, doc: dict[str, Any], fields: dict[str, Field], problem: str | None = None
           ) -> dict[str, Any]:
    """The entity of a record: its fields, its document in pieces, `invalid` and `problem`."""
    text = json.dumps(doc, default=str, sort_keys=True)
    pieces = [text[start:start + PIECE] for start in range(0, len(text), PIECE)]
    kept = pieces if len(pieces) <= MAX_PARTS else []
    found: dict[str, Any] = {"PartitionKey": kind, "RowKey": encode_part(key), "parts": len(kept),
                             "invalid": problem is not None, "problem": (problem or "")[:1000]}
    found.update({f"doc{number}": piece for number, piece in enumerate(kept)})
    found.update({name: value for name, value in fields.items() if name not in found})
    return found


def row(found: dict[str, Any]) -> Row:
    parts = int(found.get("parts", 0))
    doc = json.loads("".join(found[f"doc{number}"] for number in range(parts))) if parts else None
    key = found["key"] if found["PartitionKey"].startswith(NEWEST) else decode_part(found["RowKey"])
    return Row(key, doc, found.get("problem") or None if found.get("invalid") else None, found.get("kind", ""))


def newest_entities(found: dict[str, Any], kind: str, key: str, at: str, group: str = ""
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record's entity `found` with where its newest-first entity is (`stamp`, `group`), and that entity in
    its partition (`newest_partition`): the same properties under another key."""
    placed = {**found, "stamp": at, **({"group": group} if group else {})}
    return placed, {**placed, "PartitionKey": newest_partition(kind, group),
                    "RowKey": f"{at}~{kind}~{encode_part(key)}", "kind": kind, "key": key}


def encode_token(kind: str, token: Any) -> str | None:
    """The API's form of a table continuation token (opaque, the service's own) of `kind`'s listing: URL-safe
    base64 of its JSON with the kind."""
    if not token:
        return None
    text = json.dumps({"kind": kind, "next": token}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(kind: str, text: str) -> dict[str, str]:
    """The table continuation token `encode_token` gave for `kind`'s listing; BadToken otherwise."""
    try:
        found = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError) as error:
        raise BadToken("not a continuation token this API gave") from error
    token = found.get("next") if isinstance(found, dict) else None
    if (not isinstance(token, dict) or set(token) != {"PartitionKey", "RowKey"}
            or not all(isinstance(value, str) for value in token.values())):
        raise BadToken("not a continuation token this API gave")
    if found.get("kind") != kind:
        raise BadToken(f"a continuation token of another listing, not of {kind}")
    return token


def first_token(kind: str) -> str:
    """A token of `kind`'s first page, for a listing that shows something else before it (an endpoint's history
    shows its current rollout first): `page` starts from the beginning on it."""
    return encode_token(kind, {"PartitionKey": "", "RowKey": ""}) or ""


class TableIndex:
    """The state index on one table, created on first use; `migrate` indexes the records stored before it."""

    def __init__(self, service: TableServiceClient, table: str) -> None:
        self._table: TableClient = service.get_table_client(table)
        self.migrate: Callable[[str | None], None] | None = None
        """Indexes the records stored before the index (set by `Stores`), given the earlier layout the index has
        (None: none); run once by `ready`."""
        self._ready = False
        self._lock = threading.Lock()

    @property
    def table(self) -> TableClient:
        return self._table

    def ready(self) -> None:
        """Create the table and, on the first start, index what was stored before: once per process (one
        call when the marker is there; an index of the `EARLIER` layout gets what it lacks)."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            with contextlib.suppress(ResourceExistsError):
                self._table.create_table()
            if not self._marked(LAYOUT):
                if self.migrate is not None:
                    self.migrate(EARLIER if self._marked(EARLIER) else None)
                self._table.upsert_entity({"PartitionKey": META, "RowKey": LAYOUT, "complete": True})
            self._ready = True

    def _marked(self, layout: str) -> bool:
        try:
            self._table.get_entity(META, layout)
        except ResourceNotFoundError:
            return False
        return True

    def put(self, kind: str, key: str, doc: dict[str, Any], fields: dict[str, Field],
            problem: str | None = None, at: str | None = None, group: str = "") -> None:
        """Index the record as written (replaces what was indexed); `at` (a `stamp`): list it newest first
        too (in its `group`'s partition, if any), in place of where it was listed before."""
        found = entity(kind, key, doc, fields, problem)
        if at is None:
            self._upsert(found)
            return
        before = self._placed(kind, key)
        placed, newest = newest_entities(found, kind, key, at, group)
        self._upsert(placed)
        self._upsert(newest)
        if before is not None and before != (newest["PartitionKey"], newest["RowKey"]):
            with contextlib.suppress(ResourceNotFoundError):
                self._table.delete_entity(*before)

    def _placed(self, kind: str, key: str) -> tuple[str, str] | None:
        """Where the record's newest-first entity is (PartitionKey, RowKey), as its entity says; None: nowhere."""
        try:
            found = self._table.get_entity(kind, encode_part(key), select=["stamp", "group"])
        except ResourceNotFoundError:
            return None
        at = str(found.get("stamp") or "")
        return (newest_partition(kind, str(found.get("group") or "")), f"{at}~{kind}~{encode_part(key)}") if at \
            else None

    def _upsert(self, found: dict[str, Any]) -> None:
        try:
            self._table.upsert_entity(found, mode=UpdateMode.REPLACE)
        except ResourceNotFoundError:  # the table is created on the first listing; a write may come first
            with contextlib.suppress(ResourceExistsError):
                self._table.create_table()
            self._table.upsert_entity(found, mode=UpdateMode.REPLACE)

    def remove(self, kind: str, key: str, newest: bool = False) -> None:
        """Unindex the record (`newest`: from its newest-first partition too)."""
        before = self._placed(kind, key) if newest else None
        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(kind, encode_part(key))
            if before is not None:
                self._table.delete_entity(*before)

    def add_missing(self, entities: list[dict[str, Any]]) -> None:
        """Insert entities that are not indexed yet, `BATCH` of a partition per transaction; one the app indexed
        meanwhile (a newer write) is left as it is."""
        partitions: dict[str, list[dict[str, Any]]] = {}
        for found in entities:
            partitions.setdefault(found["PartitionKey"], []).append(found)
        for partition in partitions.values():
            self._add_missing(partition)

    def _add_missing(self, entities: list[dict[str, Any]]) -> None:
        for start in range(0, len(entities), BATCH):
            batch = entities[start:start + BATCH]
            try:
                self._table.submit_transaction([("create", found) for found in batch])
            except (ResourceExistsError, HttpResponseError):  # one exists already: the others one by one
                for found in batch:
                    with contextlib.suppress(ResourceExistsError):
                        self._table.create_entity(found)

    def page(self, kind: str, where: dict[str, Field] | None = None, prefix: str = "", limit: int = 100,
             token: str | None = None, invalid: bool | None = False) -> tuple[list[Row], str | None]:
        """One page of `kind`'s rows whose fields are `where` and key starts with `prefix`, in key order, and
        the token of the next page (None: the last). `invalid`: False leaves invalid documents out, None
        takes them too, True only them. BadToken for a token not given by this listing."""
        self.ready()
        resume = decode_token(kind, token) if token else None
        resume = resume if resume and resume["PartitionKey"] else None  # `first_token`: the first page
        query, parameters = _query(kind, where or {}, prefix, invalid)
        pages: Any = self._table.query_entities(query, parameters=parameters, results_per_page=min(limit, MAX_PAGE)
                                                ).by_page(continuation_token=resume)  # type: ignore[arg-type]
        found, seen = [], set()
        for item in map(row, next(pages, [])):
            # Two writers of one record at once may each leave a newest-first entity (`put`): the newer is listed.
            if item.key.startswith(prefix) and (item.kind, item.key) not in seen:
                seen.add((item.kind, item.key))
                found.append(item)
        return found, encode_token(kind, pages.continuation_token)

    def rows(self, kind: str, where: dict[str, Field] | None = None, prefix: str = "",
             invalid: bool | None = False) -> Iterator[Row]:
        """Every row `page` would give, page after page of `MAX_PAGE`."""
        token: str | None = None
        while True:
            found, token = self.page(kind, where, prefix, MAX_PAGE, token, invalid)
            yield from found
            if token is None:
                return


def _query(kind: str, where: dict[str, Field], prefix: str, invalid: bool | None) -> tuple[str, dict[str, Any]]:
    """The OData filter of a listing, with its values as parameters (never spliced into the text)."""
    clauses, parameters = ["PartitionKey eq @kind"], dict[str, Any](kind=kind)
    if prefix:
        low = encode_part(prefix)
        clauses += ["RowKey ge @low", "RowKey lt @high"]
        parameters.update(low=low, high=low[:-1] + chr(ord(low[-1]) + 1))
    if invalid is not None:
        clauses.append("invalid eq @invalid")
        parameters["invalid"] = invalid
    for number, (name, value) in enumerate(sorted(where.items())):
        if not name.isidentifier():
            raise ValueError(f"not a field name: {name!r}")
        clauses.append(f"{name} eq @p{number}")
        parameters[f"p{number}"] = value
    return " and ".join(clauses), parameters
