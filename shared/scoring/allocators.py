"""Allocator settings that keep a scoring process's memory flat, applied when scoring starts.

Streaming allocates and frees buffers of 1-30 MB several times a second: row groups
as they arrive, decoded tables, float32 matrices, the body of each GET in the storage
SDK. Both allocators keep what is freed for reuse, so with their defaults the
process's RSS climbs towards the sum of every size it has held (benchmark, 5 M rows
of Parquet: a 442-448 MB peak with the defaults, ~356 MB with these settings, for
about 5 % more CPU):

- glibc malloc (Python, NumPy, the SDK): a fixed mmap threshold of 1 MiB, so every
  larger block is mapped on its own and unmapped when freed. By default glibc raises
  the threshold to the size of each mapped block that is freed (up to 32 MiB); after
  the first matrix every later one comes from the heap, which keeps its holes.
- mimalloc (pyarrow's default pool): arena memory committed on use instead of up
  front, and memory freed in arenas returned after 50 ms.

mimalloc reads its options from the environment once, when pyarrow loads, so `tune`
must run before anything imports pyarrow; every `shared.scoring` module imports
pyarrow lazily for that reason, and `jobs.Scoring` (the ports every scoring path
builds first: the scoring triggers, the range worker, the benchmarks) calls `tune`.
Only there: a process that never scores (the intake, the timers, a tool that reads
the settings) keeps the allocators' defaults. A value already in the environment (an app
setting such as `MIMALLOC_PURGE_DELAY` or glibc's `MALLOC_MMAP_THRESHOLD_`) wins.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

MMAP_THRESHOLD_BYTES = 1 << 20
MIMALLOC_OPTIONS = {
    "MIMALLOC_ARENA_EAGER_COMMIT": "0",
    "MIMALLOC_PURGE_DELAY": "50",
    "MIMALLOC_ARENA_PURGE_MULT": "1",
}
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h

log = logging.getLogger(__name__)


def tune() -> None:
    """Apply the settings to this process (once is enough; again is harmless)."""
    if "pyarrow" in sys.modules:
        log.warning("pyarrow was imported before scoring started: its allocator keeps its default settings")
    for name, value in MIMALLOC_OPTIONS.items():
        os.environ.setdefault(name, value)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        set_mmap_threshold(MMAP_THRESHOLD_BYTES)


def set_mmap_threshold(size: int) -> bool:
    """glibc's `mallopt(M_MMAP_THRESHOLD, size)`; False where the C library has no such knob."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, size) == 1
