"""`./dev test` on a machine without Debian's chromium: as a user who cannot install it, it stops before any
test runs and names the one command to run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = {"chromium", "chromium-browser", "chromedriver", "id"}


def _path_without_chromium(folder: Path) -> str:
    """A PATH with every program of this one but chromium and its driver, and an `id` that says "not root"."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for program in os.listdir(directory):
            target, link = Path(directory) / program, folder / program
            if program not in HIDDEN and not link.exists() and os.access(target, os.X_OK):
                link.symlink_to(target)
    fake_id = folder / "id"
    fake_id.write_text("#!/bin/sh\necho 1000\n")
    fake_id.chmod(0o755)
    return str(folder)


def test_without_chromium_and_without_root_it_stops_before_any_test_with_the_command_to_run(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _path_without_chromium(tmp_path / "bin")}
    done = subprocess.run(["bash", str(ROOT / "dev"), "test", "--collect-only"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "sudo apt-get install -y chromium chromium-driver" in done.stderr
    assert "All checks passed" not in done.stdout and "passed" not in done.stdout, "it went on to the checks"
