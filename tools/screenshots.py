"""Refresh the control room's screenshots in docs/: `python -m tools.screenshots [--into docs]`.

They are taken by the control room's browser test (tests/e2e/test_controlroom_browser.py) while it
follows a rollout on the local stack, signed in as erin (MLOps.Admin) through the local Entra ID
stand-in, so every picture shows what the test asserted, with who is signed in and what they may do."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/e2e/test_controlroom_browser.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--into", type=Path, default=ROOT / "docs", help="where the PNG files go")
    args = parser.parse_args()
    env = {**os.environ, "CONTROLROOM_SCREENSHOTS": str(args.into.resolve())}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=ROOT, env=env)
    if result.returncode == 0:
        for shot in sorted(args.into.glob("controlroom-*.png")):
            print(shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
