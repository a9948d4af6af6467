"""The README's main job, run exactly as its quick start prints it: `./dev demo`, from the repository root,
to its expected end state (the demo exits 1 when any version ends elsewhere). The set-up it does first is
already done by the time tests run, so what it costs here is the demo itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from devhost.waiting import patience
from tests.e2e.conftest import user_shell

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def quick_start_command(name: str) -> str:
    """The README quick start's command line for `./dev <name>`, as printed (its comment dropped)."""
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README has a quick start with a bash block"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    found = [line for line in lines if line.split()[:2] == ["./dev", name]]
    assert found, f"the quick start prints ./dev {name}"
    return found[0]


def test_the_quick_starts_demo_runs_the_whole_chain_to_its_expected_end() -> None:
    command = quick_start_command("demo")
    assert command == "./dev demo"
    done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, env=user_shell(),
                          timeout=600 * patience())
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    assert "every step as expected" in done.stdout, tail
    for step in ("1. credit-risk v1 registered", "2. client traffic on", "3. v4 registered", "4. model monitor"):
        assert step in done.stdout, f"the timeline shows {step!r}"
    assert re.search(r"alice, its registrant, signed in, approves it: refused, 403", done.stdout), tail
