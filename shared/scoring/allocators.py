"""Allocator settings that keep a scoring process's memory flat and its buffers reused, applied when scoring starts.

Streaming allocates and frees buffers of 1-30 MB several times a second: row groups
as they arrive, decoded tables, the body of each 8 MiB GET in the storage SDK (which
joins it into one bytes object), output blocks. Two costs pull apart:

- memory: both allocators keep what is freed for reuse, so with their defaults the
  process's RSS climbs towards the sum of every size it has held (benchmark, 5 M rows
  of Parquet: a 442-448 MB peak with the defaults);
- CPU: memory handed back to the OS is fresh pages when it is allocated again, and a
  first touch costs this VM ~1.8 us a page. Handing back every buffer at once (a 1 MiB
  mmap threshold, mimalloc purging after 50 ms) cost 210,000 page faults per million
  rows of Parquet (820 MB of new pages) and 0.7 core-second of system CPU, a quarter of
  what the engine spent beside `session.run`.

So, between the two (benchmark, 5 M rows of Parquet, in one run: 1.01 M faults, 4.0 s of
system CPU and a 321 MB peak with every buffer handed back; 0.48 M, 1.7 s and 374 MB
with these settings):

- glibc malloc (Python, NumPy, the SDK): a fixed mmap threshold of 16 MiB, so the 8 MiB
  GET bodies and output blocks come from the heap and are reused, while a larger block
  is mapped on its own and unmapped when freed (by default glibc raises the threshold to
  the size of each mapped block that is freed, up to 32 MiB, and keeps the holes); the
  heap's free top is returned past 32 MiB, not 128 KiB.
- mimalloc (pyarrow's default pool): arena memory committed on use instead of up
  front, and memory freed in arenas returned after 250 ms, longer than a chunk takes to
  go through the pipeline, so the next chunk's buffers reuse the last one's pages.

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

MMAP_THRESHOLD_BYTES = 16 << 20
TRIM_THRESHOLD_BYTES = 32 << 20
MIMALLOC_OPTIONS = {
    "MIMALLOC_ARENA_EAGER_COMMIT": "0",
    "MIMALLOC_PURGE_DELAY": "250",
    "MIMALLOC_ARENA_PURGE_MULT": "1",
}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h

log = logging.getLogger(__name__)


def tune() -> None:
    """Apply the settings to this process (once is enough; again is harmless)."""
    if "pyarrow" in sys.modules:
        log.warning("pyarrow was imported before scoring started: its allocator keeps its default settings")
    for name, value in MIMALLOC_OPTIONS.items():
        os.environ.setdefault(name, value)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        set_mmap_threshold(MMAP_THRESHOLD_BYTES)
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


def set_mmap_threshold(size: int) -> bool:
    """glibc's `mallopt(M_MMAP_THRESHOLD, size)`; False where the C library has no such knob."""
    return _mallopt(_M_MMAP_THRESHOLD, size)


def _mallopt(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(option, value) == 1
