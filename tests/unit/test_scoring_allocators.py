"""Scoring tunes the process's allocators when it starts, and only then (issue 14, item 7).

Each case runs in a fresh interpreter, since tuning changes the process for good. glibc's
mmap threshold cannot be read back, so it is observed by what it does: after one large
block is freed, glibc's default raises the threshold and later large blocks come from the
heap, whose holes stay in the RSS; with the tuned threshold each is unmapped when freed.
Blocks below it (the SDK's 8 MiB GET bodies) are reused from the heap: no new pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORT = """
import json, os, sys, numpy as np
def rss_mb(): return int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20
first = np.ones(24 << 20, np.uint8); del first
before = rss_mb()
blocks, pins = [], []
for _ in range(5):
    blocks.append(np.ones(20 << 20, np.uint8)); pins.append(np.ones(100_000, np.uint8))
del blocks
print(json.dumps({"kept_mb": rss_mb() - before, "pyarrow": "pyarrow" in sys.modules,
                  "env": sorted(k for k in os.environ if k.startswith("MIMALLOC_"))}))
"""
START_SCORING = (
    "from shared.scoring.jobs import Scoring\n"
    "from shared.scoring.config import ScoringConfig\n"
    "Scoring(blobs=None, state=None, queue=None, config=ScoringConfig())\n"
)


def run(code: str) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if "MALLOC" not in key}
    done = subprocess.run([sys.executable, "-c", code + REPORT], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=60)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("imports", [
    "import shared.settings\nshared.settings.Settings.from_environ({'AzureWebJobsStorage': 'x'})\n",
    "import function_app\n",
    "import shared.scoring, shared.scoring.config, shared.scoring.jobs\n",
])
def test_importing_settings_the_app_or_scoring_leaves_the_allocators_alone(imports: str) -> None:
    report = run(imports)
    assert report["env"] == [], "mimalloc options were set by an import"
    assert report["kept_mb"] >= 20, "glibc's mmap threshold was changed by an import"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_starting_scoring_tunes_both_allocators_before_pyarrow_loads() -> None:
    report = run(START_SCORING)
    assert report["env"] == ["MIMALLOC_ARENA_EAGER_COMMIT", "MIMALLOC_ARENA_PURGE_MULT", "MIMALLOC_PURGE_DELAY"]
    assert report["kept_mb"] < 8
    assert report["pyarrow"] is False


# What the storage SDK does for each 8 MiB GET: join its 256 KiB reads into one bytes object.
REUSE = """
import json, resource
pieces, pins = [bytes(256 << 10) for _ in range(32)], []
body = b"".join(pieces); del body
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    body = b"".join(pieces); pins.append(bytes(1000)); del body
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_once_scoring_starts_each_get_body_reuses_the_last_ones_pages() -> None:
    """A freed 8 MiB block handed back to the OS is 2,048 new pages when the next GET arrives
    (~1.8 us each on the benchmark's VM); with 20 GETs that was 41,000 page faults."""
    env = {key: value for key, value in os.environ.items() if "MALLOC" not in key}
    done = subprocess.run([sys.executable, "-c", START_SCORING + REUSE], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True, timeout=60)
    assert json.loads(done.stdout.splitlines()[-1])["faults"] < 2048
