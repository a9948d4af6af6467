"""Group commit of appends to append blobs: what concurrent writers append to one blob goes out as one block.

The audit trail is one append blob a day, and every decision appends a line to it. One Append Block
per line costs a storage round trip per line, and an append blob holds at most 50,000 blocks
(https://learn.microsoft.com/rest/api/storageservices/append-block#remarks). Here one append per
blob is in flight at a time; lines that arrive meanwhile wait and go out together in the next block.
A writer alone pays one round trip as before; eight at once pay about two between them. Each caller
returns once its line is stored, and raises if the block that carried it failed (Append Block is
atomic: the block is stored whole or not at all).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BLOCK_BYTES = 4 * 1024 * 1024
"""The largest block every service version takes (4 MiB; 100 MiB from version 2022-11-02)."""


@dataclass
class _Block:
    """Lines bound for one Append Block, and how it ended."""

    parts: list[bytes]
    size: int
    stored: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupAppend:
    """Appends lines to blobs through `append(name, data)`, one block in flight per blob, the rest grouped."""

    def __init__(self, append: Callable[[str, bytes], None], max_block_bytes: int = MAX_BLOCK_BYTES) -> None:
        self._append, self._max = append, max_block_bytes
        self._lock = threading.Lock()
        self._gathering: dict[str, _Block] = {}
        self._writing: dict[str, threading.Lock] = {}

    def append(self, name: str, data: bytes) -> None:
        """Append `data` to blob `name`; returns once stored, raises what storing its block raised."""
        with self._lock:
            block = self._gathering.get(name)
            leads = block is None or block.size + len(data) > self._max
            if block is None or leads:
                block = self._gathering[name] = _Block([data], len(data))
            else:
                block.parts.append(data)
                block.size += len(data)
            writing = self._writing.setdefault(name, threading.Lock())
        if not leads:
            block.stored.wait()
            if block.error is not None:
                raise block.error
            return
        with writing:  # while the block before this one is stored, lines gather in this one
            with self._lock:
                if self._gathering.get(name) is block:
                    del self._gathering[name]
            try:
                self._append(name, b"".join(block.parts))
            except BaseException as error:
                block.error = error
                raise
            finally:
                block.stored.set()
