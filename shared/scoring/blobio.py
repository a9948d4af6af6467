"""Stream blobs in and out without holding them in memory.

`BlobReader` is a seekable, read-only file over ranged GETs (what Parquet needs:
the footer first, then column chunks); `read_lines_range` yields whole lines of a
byte range in large pieces (what CSV and JSON Lines ranges need); `BlockSink` is a
write-only file that stages each few MiB as a block of the output blob, with
deterministic block ids so that a retried range overwrites its own blocks.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from azure.storage.blob import BlobBlock, BlobClient

BLOCK_BYTES = 8 * 1024**2


class BlobReader(io.RawIOBase):
    """A read-only, seekable view of one blob version (its size is fixed when opened)."""

    def __init__(self, blob: BlobClient, size: int, etag: str | None = None) -> None:
        self._blob = blob
        self._size = size
        self._etag = etag
        self._pos = 0

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

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        length = min(len(buffer), self._size - self._pos)
        if length <= 0:
            return 0
        data = read_range(self._blob, self._pos, length, self._etag)
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        return len(data)


def read_range(blob: BlobClient, offset: int, length: int, etag: str | None = None) -> bytes:
    """Bytes [offset, offset + length) of the blob; with `etag`, fail if the blob changed."""
    conditions = {"etag": etag, "match_condition": _if_match()} if etag else {}
    return blob.download_blob(offset=offset, length=length, max_concurrency=1, **conditions).readall()


def open_reader(
    blob: BlobClient, size: int, etag: str | None = None, buffer_size: int = BLOCK_BYTES
) -> io.BufferedReader:
    return io.BufferedReader(BlobReader(blob, size, etag), buffer_size=buffer_size)


def read_lines_range(
    blob: BlobClient, size: int, start: int, end: int, piece: int, etag: str | None = None
) -> Iterator[bytes]:
    """Whole lines that start in [start, end), in pieces of about `piece` bytes.

    The Hadoop convention: a range owns every line that starts inside it, so a range
    that starts mid-line skips to the next line and its last line is read past `end`.
    """
    position, carry = max(start - 1, 0), b""
    # Reading from start - 1 tells whether a line starts exactly at `start`.
    drop_first = start > 0
    while position < size:
        data = read_range(blob, position, min(piece, size - position), etag)
        position += len(data)
        buffer = carry + data
        buffer_start = position - len(buffer)
        if drop_first:
            newline = buffer.find(b"\n")
            if newline < 0:
                carry = b""
                continue
            buffer, buffer_start, drop_first = buffer[newline + 1 :], buffer_start + newline + 1, False
        if buffer_start >= end:
            return
        cut = buffer.rfind(b"\n") + 1
        complete, carry = buffer[:cut], buffer[cut:]
        first_not_ours = complete.find(b"\n", end - buffer_start - 1) + 1
        if first_not_ours:
            yield complete[:first_not_ours]
            return
        if complete:
            yield complete
    if carry and not drop_first and size - len(carry) < end:
        yield carry + b"\n"


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
        self._blob.stage_block(identifier, bytes(self._buffer))
        self.block_ids.append(identifier)
        self._buffer.clear()


def commit_blocks(blob: BlobClient, block_ids: list[str], content_type: str) -> None:
    """Make the staged blocks the blob's content, in this order; repeating it is harmless."""
    from azure.storage.blob import ContentSettings

    blob.commit_block_list([BlobBlock(block_id=i) for i in block_ids], content_settings=ContentSettings(content_type))


def _if_match():
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
