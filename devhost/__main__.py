"""Run the local Functions host: `python -m devhost [--port 7071] [--app-dir .]`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from devhost.host import FunctionHost
from devhost.keys import HostKeys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd())
    parser.add_argument("--keys", type=Path, default=Path(".devhost/keys.json"), help="host keys file (0600)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    keys = HostKeys.load_or_create(args.keys)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FunctionHost(args.app_dir.resolve(), args.port, keys) as host:
        print(f"Local Functions host listening on {host.url} (keys in {args.keys})", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
