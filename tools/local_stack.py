"""Run the local stack for manual use until Ctrl-C: Azurite, the local Functions host on
:7071, the local Azure ML service on :8443 (seeded: workspaces dev and prod, registry
`shared`, the repo's components, data and the prod endpoint), and an ops webhook
receiver that prints each notification.

    ./dev host
    ./dev send tests/fixtures/aml-events          # in another shell
    python -m tools.opsctl --key "$(jq -r .function .devhost/keys.json)" status

Data stays in `.devhost/` between runs.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from devhost.stack import local_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--azureml-port", type=int, default=8443)
    parser.add_argument("--workdir", type=Path, default=Path(".devhost"))
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with local_stack(args.workdir.resolve(), fast=False, host_port=args.port, azureml_port=args.azureml_port) as stack:
        print(f"Functions host      {stack.host.url}   (log: {args.workdir / 'host.log'})")
        print(f"  keys              {args.workdir / 'keys.json'} (function, master, system keys)")
        hook = f"{stack.host.url}/runtime/webhooks/eventgrid?functionName=aml_events"
        print(f"  Event Grid hook   {hook}&code=<eventgrid_extension key>")
        print(f"  admin API         {stack.host.url}/api/ops/health   (x-functions-key: <function>)")
        print(f"Azure ML (local)    {stack.aml.url}   (CA: {stack.aml.certificates.ca_file})")
        print(f"  its storage       {stack.aml.azurite.connection_string}")
        print(f"App storage         {stack.azurite.connection_string}")
        print(f"Ops webhook         {stack.receiver.url}/received")
        print("Send events with ./dev send (it reads the key from .devhost/keys.json). Ctrl-C stops.")
        stop.wait()


if __name__ == "__main__":
    main()
