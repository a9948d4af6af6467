"""The app's state in Blob Storage: event ledger, records, audit trail, leases.

- `ledger/<key>.json`: one blob per handled event, created with If-None-Match: * so
  that of two concurrent deliveries of one event exactly one claims it.
- `records/<kind>/<id>.json`: JSON documents updated under ETag concurrency control.
- `audit/<day>.jsonl`: append blobs, one JSON line per decision; never rewritten. Lines appended
  at the same time share one block (`shared.adapters.storage.appends`).
- leases on records give one writer per endpoint (rollouts) or model version (lifecycles).

The app reads and writes its records through the typed stores built on this one, one store per
kind (`shared.adapters.storage.stores`).

Keys are names from outside (Azure ML asset names, endpoint names), so each path part is
percent-encoded where it must be (see `encode_part`): any name can be stored, none can
escape its folder, and the names the app always used keep their blob names.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.adapters import telemetry
from shared.adapters.storage.appends import GroupAppend
from shared.domain.ports import Busy
from shared.domain.records import AuditEntry

SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=@-]{0,200}$")
"""Names that are stored as they are (every key the app used before names were encoded)."""
MAX_BLOB_NAME = 1024  # Azure Storage's limit on a blob name, in characters
_KEPT = ":=@"  # kept as they are, with letters, digits and `_.-~` (urllib's unreserved characters)
Doc = dict[str, Any]
LISTING_WORKERS = 8
"""Downloads in flight when listing records. With 5 ms a request, 200 records list 3.6x faster than
one after another, 10 or 16 workers gain 1-3 % more (`benchmarks/state_listing.py`): the client's
own CPU (~1.7 ms a download, under the GIL) is the limit by then. 8 also stays under the 10
connections a blob client keeps per host; beyond them connections are opened and dropped."""


LEDGER = "ledger"  # the one kind kept outside `records/`
LEASE_RETRY_SECONDS = 0.2
CHANGED_RETRY_SECONDS = 1.0
"""How long to wait after a record changed under its writer (ETag mismatch): the next attempt reads it anew."""


def encode_part(part: str) -> str:
    """`part` as one path segment: reversible (`decode_part`), and never `.`, `..` or with a `/`.

    Every character but letters, digits and `_.-~:=@` is percent-encoded (UTF-8; a lone
    surrogate too), `%` included, which makes the encoding unambiguous; a leading `.` is
    encoded so that no segment is `.` or `..`. Names that match `SEGMENT` are unchanged.
    """
    if not part:
        raise ValueError("unsafe name for a state path: an empty name")
    encoded = urllib.parse.quote(part, safe=_KEPT, encoding="utf-8", errors="surrogatepass")
    return "%2E" + encoded[1:] if encoded.startswith(".") else encoded


def decode_part(part: str) -> str:
    """The name `encode_part` encoded."""
    return urllib.parse.unquote(part, encoding="utf-8", errors="surrogatepass")


def blob_path(*segments: str) -> str:
    """Join path segments, each encoded (`encode_part`); ValueError if the name is too long for Azure.

    A final `.` is encoded too: Azure Storage drops trailing dots from blob names, which would
    make `x.` and `x` one blob.
    """
    path = "/".join(encode_part(segment) for segment in segments)
    if path.endswith("."):
        path = path[:-1] + "%2E"
    if len(path) > MAX_BLOB_NAME:
        raise ValueError(f"unsafe name for a state path: longer than {MAX_BLOB_NAME} characters once encoded")
    return path


class BlobStateStore:
    """State store on one blob container, created on first use."""

    listing_workers = LISTING_WORKERS
    """Records downloaded at once by `items` and `list` (1: one after another)."""

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container: ContainerClient = service.get_container_client(container)
        self._ready = False
        self._appends = GroupAppend(self._append_block)

    @property
    def container(self) -> ContainerClient:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._ready = True
        return self._container

    # Records ------------------------------------------------------------------

    def read(self, kind: str, key: str) -> tuple[Doc, str] | None:
        """The record and its ETag, or None."""
        blob = self.container.get_blob_client(self._name(kind, key))
        try:
            download = blob.download_blob()
        except ResourceNotFoundError:
            return None
        return json.loads(download.readall()), str(download.properties.etag)

    def get(self, kind: str, key: str) -> Doc | None:
        found = self.read(kind, key)
        return found[0] if found else None

    def create(self, kind: str, key: str, doc: Doc) -> bool:
        """Create the record if absent; False if it exists (of two concurrent creations, exactly one wins)."""
        blob = self.container.get_blob_client(self._name(kind, key))
        try:
            blob.upload_blob(_dump(doc), overwrite=False)
        except ResourceExistsError:
            return False
        return True

    def write(self, kind: str, key: str, doc: Doc, etag: str | None) -> str:
        """Write the record if it still has `etag` (None: must not exist), else Busy. Returns the new ETag."""
        blob = self.container.get_blob_client(self._name(kind, key))
        try:
            if etag is None:
                result = blob.upload_blob(_dump(doc), overwrite=False)
            else:
                result = blob.upload_blob(
                    _dump(doc), overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise Busy(f"{kind}/{key} changed concurrently", CHANGED_RETRY_SECONDS) from error
        except HttpResponseError as error:
            if error.status_code in (409, 412):
                raise Busy(f"{kind}/{key} changed concurrently", CHANGED_RETRY_SECONDS) from error
            raise
        return str(result["etag"])

    def put(self, kind: str, key: str, doc: Doc) -> None:
        """Write the record unconditionally (for records with a single writer)."""
        self.container.get_blob_client(self._name(kind, key)).upload_blob(_dump(doc), overwrite=True)

    def update(self, kind: str, key: str, change: Callable[[Doc | None], Doc], attempts: int = 10) -> Doc:
        """Read-modify-write with ETag retries; `change` gets the current doc (or None). Busy when other writers
        keep changing it."""
        for _ in range(attempts):
            found = self.read(kind, key)
            current, etag = found if found else (None, None)
            updated = change(json.loads(json.dumps(current)) if current is not None else None)
            try:
                self.write(kind, key, updated, etag)
            except Busy:
                time.sleep(0.05)
                continue
            return updated
        raise Busy(f"{kind}/{key}: gave up after {attempts} concurrent updates", CHANGED_RETRY_SECONDS)

    def delete(self, kind: str, key: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(self._name(kind, key))

    def list(self, kind: str, prefix: str = "") -> list[Doc]:
        """Every record of a kind (whose key starts with `prefix`)."""
        return [doc for _, doc in self.items(kind, prefix)]

    def items(self, kind: str, prefix: str = "") -> builtins.list[tuple[str, Doc]]:
        """Every record of a kind (whose key starts with `prefix`) with its key, in key order.

        The records are downloaded `listing_workers` at a time; one deleted since the listing
        is left out, any other error is raised (and the downloads not yet started are dropped).
        """
        names = self._record_names(kind, prefix)
        docs = self._download_all([name for _, name in names])
        return [(key, doc) for (key, _), doc in zip(names, docs, strict=True) if doc is not None]

    def _record_names(self, kind: str, prefix: str) -> builtins.list[tuple[str, str]]:
        """(key, blob name) of every record of a kind whose key starts with `prefix`, by key."""
        folder = blob_path("records", kind) + "/"
        # A `.` may be encoded for its place (last), so the listing starts before trailing dots.
        trimmed = prefix.rstrip(".")
        start = encode_part(trimmed) if trimmed else ""
        names = []
        for item in self.container.list_blobs(name_starts_with=folder + start):
            key = decode_part(item.name[len(folder):].removesuffix(".json"))
            if key.startswith(prefix):
                names.append((key, item.name))
        return sorted(names)

    def _download_all(self, names: builtins.list[str], download: Callable[[str], Any] | None = None
                      ) -> builtins.list[Any]:
        """The documents of `names` in their order (None: deleted), downloaded concurrently.

        Each download runs in a copy of the caller's context, so that its spans stay in the
        caller's trace. The pool lives for one listing: listings come from the ops API and the
        timers (the rollout tick's every 30 s), and starting a few threads costs less than one
        round trip.
        """
        download = download or self._download
        workers = min(self.listing_workers, len(names))
        if workers <= 1:
            return [download(name) for name in names]
        context = contextvars.copy_context()
        with ThreadPoolExecutor(workers, thread_name_prefix="state-listing") as pool:
            # map cancels the downloads not yet started when one raises.
            return builtins.list(pool.map(lambda name: context.copy().run(download, name), names))

    def _download(self, name: str) -> Doc | None:
        try:
            return json.loads(self.container.get_blob_client(name).download_blob().readall())
        except ResourceNotFoundError:
            return None

    def documents(self, kind: str, batch: int = 1000) -> Iterator[builtins.list[tuple[str, Doc | ValueError]]]:
        """Every record of a kind with its key, `batch` at a time, downloaded as `items` does; a document that
        is not JSON comes as the ValueError saying so (one unreadable record must not stop the others)."""
        names = self._record_names(kind, "")
        for start in range(0, len(names), batch):
            chunk = names[start:start + batch]
            found = self._download_all([name for _, name in chunk], self._readable)
            yield [(key, doc) for (key, _), doc in zip(chunk, found, strict=True) if doc is not None]

    def _readable(self, name: str) -> Doc | ValueError | None:
        try:
            return self._download(name)
        except ValueError as error:
            return ValueError(f"not JSON: {error}")

    @contextlib.contextmanager
    def lease(self, kind: str, key: str, seconds: int = 60, wait_seconds: float = 0) -> Iterator[None]:
        """Hold the record's lease (one writer); Busy if someone else holds it for longer than `wait_seconds`.
        Only acquiring is retried: what the body raises is the body's."""
        blob = self.container.get_blob_client(blob_path("leases", kind, key))
        with contextlib.suppress(ResourceExistsError):
            blob.upload_blob(b"", overwrite=False)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                lease = blob.acquire_lease(lease_duration=seconds)
                break
            except HttpResponseError as error:
                if error.status_code != 409:
                    raise
                if time.monotonic() >= deadline:
                    raise Busy(f"{kind}/{key} is leased by another writer") from error
                time.sleep(LEASE_RETRY_SECONDS)
        try:
            yield
        finally:
            with contextlib.suppress(HttpResponseError):
                lease.release()

    def _name(self, kind: str, key: str) -> str:
        if kind == LEDGER:
            return blob_path(LEDGER, key) + ".json"
        return blob_path("records", kind, key) + ".json"

    # Audit trail ----------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        """Append one entry to the day's append blob; with telemetry on, it is also a decision record and metric."""
        self.append_lines(f"audit/{entry.time:%Y-%m-%d}.jsonl", entry.model_dump_json().encode() + b"\n")
        telemetry.audited(entry)

    def append_lines(self, name: str, data: bytes) -> None:
        """Append to an append blob, creating it first if needed; concurrent appends share a block."""
        self._appends.append(name, data)

    def _append_block(self, name: str, data: bytes) -> None:
        blob = self.container.get_blob_client(name)
        try:
            blob.append_block(data)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                blob.create_append_blob(if_none_match="*")
            blob.append_block(data)

    def audit_page(self, limit: int, match: Callable[[AuditEntry], bool], since: datetime | None = None,
                   before: tuple[str, int] | None = None) -> tuple[builtins.list[AuditEntry], tuple[str, int] | None]:
        """The most recent `limit` entries that `match`, at or after `since`, before the cursor `before` (a day
        and a byte offset in its blob), oldest first; and the cursor of the entries before them (None: none).

        Each day's blob is read backwards `AUDIT_CHUNK` bytes at a time, so that a page costs what it reads,
        not the trail's size; a line that is not an entry is skipped (one bad line hides nothing)."""
        floor = since.date().isoformat() if since else ""
        days = [day for day in self._audit_days() if day >= floor and (before is None or day <= before[0])]
        found: builtins.list[AuditEntry] = []
        for number in range(len(days) - 1, -1, -1):
            day = days[number]
            blob = self.container.get_blob_client(f"audit/{day}.jsonl")
            end = before[1] if before and day == before[0] else None
            if end is None:
                try:
                    end = int(blob.get_blob_properties().size)
                except ResourceNotFoundError:
                    continue
            for start, line in _lines_backwards(blob, end):
                entry = _entry(line)
                if entry is None or (since is not None and entry.time < since) or not match(entry):
                    continue
                found.append(entry)
                if len(found) == limit:
                    more = start > 0 or number > 0
                    return found[::-1], (day, start) if more else None
        return found[::-1], None

    def _audit_days(self) -> builtins.list[str]:
        return sorted(item.name[len("audit/"):].removesuffix(".jsonl")
                      for item in self.container.list_blobs(name_starts_with="audit/"))

    def read_audit(self, days: builtins.list[str] | None = None) -> builtins.list[AuditEntry]:
        """Audit entries of the given days (`YYYY-MM-DD`), or of every day, oldest first."""
        names = [f"audit/{day}.jsonl" for day in days] if days else [
            item.name for item in self.container.list_blobs(name_starts_with="audit/")
        ]
        entries: builtins.list[AuditEntry] = []
        for name in sorted(names):
            try:
                text = self.container.get_blob_client(name).download_blob().readall()
            except ResourceNotFoundError:
                continue
            entries.extend(AuditEntry.model_validate_json(line) for line in text.splitlines() if line.strip())
        return entries


AUDIT_CHUNK = 256 * 1024
"""Bytes of an audit blob read at once, backwards: about a thousand entries."""


def _lines_backwards(blob: Any, end: int) -> Iterator[tuple[int, bytes]]:
    """The lines of the blob's first `end` bytes, last first, each with the offset it starts at."""
    chunk = AUDIT_CHUNK
    while end > 0:
        start = max(0, end - chunk)
        data = blob.download_blob(offset=start, length=end - start).readall()
        if start > 0:
            cut = data.find(b"\n")
            if cut < 0:  # one line longer than the chunk: read more at once
                chunk *= 2
                continue
            data, start = data[cut + 1:], start + cut + 1
        offset = end
        for line in reversed(data.split(b"\n")):
            offset -= len(line) + 1
            if line.strip():
                yield max(offset + 1, start), line
        end = start


def _entry(line: bytes) -> AuditEntry | None:
    try:
        return AuditEntry.model_validate_json(line)
    except ValueError:
        return None


def _dump(doc: Doc) -> bytes:
    return json.dumps(doc, default=str, sort_keys=True).encode()
