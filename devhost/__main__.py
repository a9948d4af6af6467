"""Run the local Functions host: `python -m devhost [--port 7071] [--app-dir .] [--triggers KINDS]`.

Without `--triggers`, this process serves HTTP, the extension webhooks, the admin routes and the timers, and
runs the queue triggers in a second process (`devhost.split`); `--triggers` makes one process of the kinds
named, alone (`--triggers http,eventgrid,blob,timer,queue`: everything in one process).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from devhost import split
from devhost.host import TRIGGER_KINDS, FunctionHost, trigger_kinds
from devhost.keys import HostKeys

READY_SECONDS = 120.0
"""How long the host waits for its queue process to start listening (both index the app at once)."""


def kinds(text: str) -> frozenset[str]:
    try:
        return trigger_kinds(part.strip() for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd())
    parser.add_argument("--keys", type=Path, default=Path(".devhost/keys.json"), help="host keys file (0600)")
    parser.add_argument("--triggers", type=kinds, default=None,
                        help=f"comma-separated trigger kinds this one process listens to ({', '.join(TRIGGER_KINDS)})")
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    if args.exit_with_parent:
        split.exit_with_parent()
    keys = HostKeys.load_or_create(args.keys)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    app_dir = args.app_dir.resolve()
    failed: list[int] = []

    def queues_exited(code: int) -> None:
        failed.append(code)
        stop.set()

    queues = None if args.triggers else split.QueueProcess(app_dir, args.keys, on_exit=queues_exited).start()
    try:
        host = FunctionHost(app_dir, args.port, keys, triggers=args.triggers or split.FRONT_KINDS)
        if queues:
            queues.wait_ready(READY_SECONDS)  # the app was indexed here meanwhile
        with host:
            if args.ready_fd is not None:
                split.report_ready(args.ready_fd)
            if host.serves_http:
                print(f"Local Functions host listening on {host.url} (keys in {args.keys})", flush=True)
            else:
                print(f"Local Functions host for {', '.join(sorted(host.triggers))} triggers", flush=True)
            stop.wait()
            if queues:
                queues.request_stop()  # both processes finish their work in hand at once
    finally:
        if queues:
            queues.stop()
    if failed:
        sys.exit(f"the queue triggers' process exited with {failed[0]}")


if __name__ == "__main__":
    main()
