"""The allocator settings scoring applies to its process when it starts (each case in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What every scoring path does first: build its ports (on storage that need not exist).
START = (
    "from shared.scoring.jobs import Scoring\n"
    "Scoring(blobs=None, state=None, queue=None, config=None)\n"
)

# Large blocks, each followed by a small one that stays: freed, the large ones leave holes
# in glibc's heap unless each was mapped on its own.
HOLES = """
import json, numpy as np
def rss_mb(): return int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20
first = np.ones(24 << 20, np.uint8); del first
before = rss_mb()
blocks, pins = [], []
for _ in range(5):
    blocks.append(np.ones(20 << 20, np.uint8)); pins.append(np.ones(100_000, np.uint8))
del blocks
print(json.dumps({"kept_mb": rss_mb() - before}))
"""


def run(code: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if "MALLOC" not in key} | (environment or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_freed_after_scoring_starts_go_back_to_the_os() -> None:
    # With glibc's defaults this pattern keeps ~100 MB: the first freed 24 MiB block raises the
    # mmap threshold, and the 20 MiB blocks after it come from the heap.
    done = run(START + HOLES)
    assert json.loads(done.stdout)["kept_mb"] < 8


def test_mimalloc_options_are_set_before_pyarrow_loads_and_yield_to_the_environment() -> None:
    code = (
        "import os, sys, json\n" + START +
        "print(json.dumps({'pyarrow': 'pyarrow' in sys.modules, "
        "'env': {k: v for k, v in os.environ.items() if k.startswith('MIMALLOC_')}}))"
    )
    done = json.loads(run(code, {"MIMALLOC_PURGE_DELAY": "7"}).stdout)
    assert done["pyarrow"] is False
    assert done["env"] == {
        "MIMALLOC_ARENA_EAGER_COMMIT": "0",
        "MIMALLOC_PURGE_DELAY": "7",
        "MIMALLOC_ARENA_PURGE_MULT": "1",
    }


def test_importing_pyarrow_first_is_reported() -> None:
    done = run("import pyarrow\n" + START)
    assert "pyarrow was imported before scoring started" in done.stderr
