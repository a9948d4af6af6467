"""Stream blobs in and out without holding them in memory.

`BlobReader` is a seekable, read-only file over ranged GETs (what Parquet needs:
the footer first, then column chunks), optionally over byte spans fetched ahead in
large GETs; `read_lines_range` yields whole lines of a byte range in large pieces
(what CSV and JSON Lines ranges need); `BlockSink` is a write-only file that stages
each few MiB as a block of the output blob, with deterministic block ids so that a
retried range overwrites its own blocks.

Every GET and PUT moves MiBs, not KiBs: a request costs the same round trip and
per-request work whatever its size (a ranged GET from Azurite moves ~240 MB/s in
4 MiB pieces and ~400 MB/s in 16-32 MiB pieces).
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Iterator
from typing import Any

from azure.storage.blob import BlobBlock, BlobClient

BLOCK_BYTES = 8 * 1024**2
# The SDK holds each GET's body twice (its pieces, then their join) before it is copied
# into the span's buffer: 8 MiB GETs keep that transient small (32 MiB ones added ~40 MB
# to a Parquet job's peak) for about the same CPU.
GET_BYTES = 8 * 1024**2


class BlobReader(io.RawIOBase):
    """A read-only, seekable view of one blob version (its size is fixed when opened).

    `spans` maps offsets to bytes already fetched: a read inside one is served from
    memory, any other read is a ranged GET.
    """

    def __init__(
        self, blob: BlobClient, size: int, etag: str | None = None, spans: dict[int, memoryview] | None = None
    ) -> None:
        self._blob = blob
        self._size = size
        self._etag = etag
        self._pos = 0
        self._spans = sorted((spans or {}).items())
        self._starts = [start for start, _ in self._spans]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes | memoryview:
        """Up to `size` bytes (the rest of the blob for -1); a view, without a copy, of bytes fetched ahead."""
        length = min(self._size - self._pos if size < 0 else size, self._size - self._pos)
        if length <= 0:
            return b""
        data: bytes | memoryview | None = self._fetched(self._pos, length)
        if data is None:
            data = read_range(self._blob, self._pos, length, self._etag)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def _fetched(self, offset: int, length: int) -> memoryview | None:
        index = bisect.bisect_right(self._starts, offset) - 1
        if index < 0:
            return None
        start, data = self._spans[index]
        if offset + length > start + len(data):
            return None
        return memoryview(data)[offset - start : offset - start + length]


def read_spans(blob: BlobClient, spans: list[tuple[int, int]], etag: str | None = None) -> dict[int, memoryview]:
    """The bytes of each [start, end) span, fetched in GETs of at most `GET_BYTES` straight into one buffer.

    The buffers come from pyarrow's memory pool, which reuses them from one span to the
    next (`allocators` sets how soon it returns what is freed).
    """
    import pyarrow as pa

    fetched: dict[int, memoryview] = {}
    for start, end in spans:
        view = memoryview(pa.allocate_buffer(end - start)).cast("B")
        read_into(blob, start, view, etag)
        fetched[start] = view
    return fetched


def read_into(blob: BlobClient, offset: int, view: memoryview, etag: str | None = None) -> None:
    """Fill `view` with the blob's bytes from `offset`, in GETs of at most `GET_BYTES`."""
    for start in range(0, len(view), GET_BYTES):
        get_into(blob, offset + start, view[start : start + GET_BYTES], etag)


def get_into(blob: BlobClient, offset: int, view: memoryview, etag: str | None = None, attempts: int = 3) -> None:
    """One ranged GET whose body is read from the socket straight into `view`.

    `download_blob(...).readinto` reads a body in 256 KiB pieces and joins them into a
    new bytes object before writing it out: two copies of every byte, and an 8 MiB
    object per GET. This sends the same request through the blob client's own pipeline
    (its credential, retries, tracing), as the SDK's downloader does
    (`_clients.blob.download`, `azure/storage/blob/_download.py`), keeps the response
    streaming, and lets the socket write into the caller's buffer. A body cut short is
    requested again, as the SDK's downloader does (3 attempts).
    """
    from azure.core.exceptions import HttpResponseError, IncompleteReadError, ServiceResponseError

    for attempt in range(attempts):
        try:
            response = _ranged_get(blob, offset, len(view), etag)
        except HttpResponseError as error:
            from azure.storage.blob._shared.response_handlers import process_storage_error

            process_storage_error(error)  # as download_blob: 412 -> ResourceModifiedError, 404 -> ...NotFound
        try:
            _read_body(response, view)
            return
        except (IncompleteReadError, ServiceResponseError, OSError):
            response.close()
            if attempt == attempts - 1:
                raise


def _ranged_get(blob: BlobClient, offset: int, length: int, etag: str | None) -> Any:
    """The streaming HTTP response to `GET` bytes [offset, offset + length), if the ETag still matches."""
    from azure.storage.blob._generated.models import ModifiedAccessConditions

    conditions = ModifiedAccessConditions(if_match=etag) if etag else None
    return blob._client.blob.download(  # the SDK's own operation, without its downloader's join
        range=f"bytes={offset}-{offset + length - 1}",
        modified_access_conditions=conditions,
        cls=lambda pipeline_response, _body, _headers: pipeline_response.http_response,
    )


def _read_body(response: Any, view: memoryview) -> None:
    """Read the response's body, exactly `len(view)` bytes, into `view`, then return its connection to the pool.

    With the requests transport (the SDK's default), the body is read by http.client's
    `readinto`, which fills the buffer from the socket without an intermediate object
    (urllib3's own `readinto` reads into a new bytes object and copies it). With any
    other transport the body's pieces are copied in as they come.
    """
    from azure.core.exceptions import IncompleteReadError

    raw: Any = getattr(getattr(response, "internal_response", None), "raw", None)
    body = getattr(raw, "_fp", None)
    filled = 0
    if body is not None and hasattr(body, "readinto") and not raw.headers.get("content-encoding"):
        while filled < len(view):
            read = body.readinto(view[filled:])
            if not read:
                break
            filled += read
        if filled == len(view) and body.length == 0:
            raw.release_conn()  # the whole body is read: the connection is clean for the next request
        else:
            response.close()  # bytes left on it (or a body cut short): the connection is not reused
    else:
        for piece in response.iter_bytes():
            view[filled : filled + len(piece)] = piece
            filled += len(piece)
    if filled != len(view):
        raise IncompleteReadError(f"expected {len(view)} bytes of the blob, got {filled}")


def read_range(blob: BlobClient, offset: int, length: int, etag: str | None = None) -> bytes:
    """Bytes [offset, offset + length) of the blob; with `etag`, fail if the blob changed."""
    return blob.download_blob(offset=offset, length=length, max_concurrency=1, **_conditions(etag)).readall()


def open_reader(
    blob: BlobClient, size: int, etag: str | None = None, buffer_size: int = BLOCK_BYTES
) -> io.BufferedReader:
    # BlobReader is a RawIOBase whose read may return a memoryview, which BufferedReader takes (typeshed says bytes).
    return io.BufferedReader(BlobReader(blob, size, etag), buffer_size=buffer_size)  # type: ignore[arg-type]


def read_lines_range(
    blob: BlobClient, size: int, start: int, end: int, piece: int, etag: str | None = None
) -> Iterator[memoryview]:
    """Whole lines that start in [start, end), in pieces of about `piece` bytes.

    The Hadoop convention: a range owns every line that starts inside it, so a range
    that starts mid-line skips to the next line and its last line is read past `end`.
    Each piece is downloaded into a buffer of its own, after the partial line the last
    one left, and yielded as a view of it: its bytes are copied once, not per slice.
    """
    position, carry = max(start - 1, 0), b""
    # Reading from start - 1 tells whether a line starts exactly at `start`.
    drop_first = start > 0
    while position < size:
        length = min(piece, size - position)
        buffer = bytearray(len(carry) + length)
        buffer[: len(carry)] = carry
        read_into(blob, position, memoryview(buffer)[len(carry) :], etag)
        position += length
        buffer_start, first = position - len(buffer), 0  # the blob offset of buffer[0]; our first byte in it
        if drop_first:
            newline = buffer.find(b"\n")
            if newline < 0:
                carry = b""
                continue
            first, drop_first = newline + 1, False
        if buffer_start + first >= end:
            return
        cut = buffer.rfind(b"\n", first) + 1 or first
        carry = bytes(buffer[cut:])
        view = memoryview(buffer)
        last_ours = buffer.find(b"\n", end - buffer_start - 1, cut)
        if last_ours >= 0:
            yield view[first : last_ours + 1]
            return
        if cut > first:
            yield view[first:cut]
    if carry and not drop_first and size - len(carry) < end:
        yield memoryview(carry + b"\n")


def block_id(part: int, sequence: int) -> str:
    """Deterministic and of one length for every block of a blob, as the service requires."""
    return f"{part:06d}-{sequence:08d}"


class BlockSink(io.RawIOBase):
    """A write-only file whose bytes become staged (uncommitted) blocks of one blob."""

    def __init__(self, blob: BlobClient, part: int, block_bytes: int = BLOCK_BYTES) -> None:
        self._blob = blob
        self._part = part
        self._block_bytes = block_bytes
        self._buffer = bytearray()
        self._written = 0
        self.block_ids: list[str] = []

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self._buffer += view
        self._written += len(view)
        if len(self._buffer) >= self._block_bytes:
            self._stage()
        return len(view)

    def flush(self) -> None:
        """Buffered bytes stay until `close`: blocks are only staged when full."""

    def close(self) -> None:
        if not self.closed and self._buffer:
            self._stage()
        super().close()

    def _stage(self) -> None:
        identifier = block_id(self._part, len(self.block_ids))
        # Content-MD5 lets the service check the block; Azurite then skips its own CRC64 (3x slower uploads).
        self._blob.stage_block(identifier, bytes(self._buffer), validate_content=True)
        self.block_ids.append(identifier)
        self._buffer.clear()


def commit_blocks(blob: BlobClient, block_ids: list[str], content_type: str) -> None:
    """Make the staged blocks the blob's content, in this order; repeating it is harmless."""
    from azure.storage.blob import ContentSettings

    blob.commit_block_list([BlobBlock(block_id=i) for i in block_ids], content_settings=ContentSettings(content_type))


def _conditions(etag: str | None) -> dict[str, Any]:
    """With an ETag, a GET fails if the blob changed since (ResourceModifiedError)."""
    from azure.core import MatchConditions

    return {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
