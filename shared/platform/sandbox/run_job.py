"""The sandbox job runner: `python -m shared.platform.sandbox.run_job <workspace> <job>`.

Started detached by `submit_job`; reads the app settings from its environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal

from shared.platform.sandbox import jobs
from shared.platform.sandbox.platform import SandboxPlatform
from shared.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace")
    parser.add_argument("job")
    parser.add_argument("--deadline", type=int, default=600, help="seconds before the runner gives up")
    args = parser.parse_args(argv)
    if hasattr(signal, "alarm"):
        # A runner must never outlive its purpose, e.g. retrying a storage account that is gone.
        signal.alarm(args.deadline)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every HTTP request at INFO
    platform = SandboxPlatform.from_settings(Settings.from_environ(os.environ))
    doc = jobs.run(platform, args.workspace, args.job)
    return 0 if doc["status"] == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
