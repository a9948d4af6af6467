"""Run the local stack for manual use until Ctrl-C: Azurite, the local Functions host on
:7071, the local Azure ML service on :8443 (seeded: workspaces dev and prod, registry
`shared`, the repo's components, data and the prod endpoint) with the local Entra ID whose
tokens it takes, and an ops webhook receiver that prints each notification with its reason.
Clients send modest traffic to the prod endpoint (10 requests/s; `--traffic` changes the rate, 0
switches it off), as they would in production, so a rollout by hand is judged on live requests.

    ./dev host [--review]             # --review: a version that passes waits for an approver (bob)
    ./dev register                    # in another shell: a new credit-risk version in dev, by alice
    ./dev send samples/events         # or send the sample events (samples/README.md: what each starts)
    python -m opsctl login            # sign in (device code) as a person of the local Entra ID
    python -m opsctl lifecycles       # or `opsctl` after `pip install .`

Everything is kept in `.localdev/` between runs: the app's storage (Azurite), the local
Azure ML service's resources (`localaml/state.json`) and blobs, and the host keys.
`.localdev/connection.json` (0600) holds what other commands need to reach the stack.
Delete the folder to start afresh.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devhost.azurite import running_azurite
from devhost.localaml import write_atomically
from devhost.receiver import Receiver, describe
from devhost.stack import Stack, TrafficGenerator, local_stack
from opsctl.client import remember_local_stack

WORKDIR = Path(".localdev")
CONNECTION_FILE = "connection.json"
# A fixed name, so that a restarted host finds its lifecycles (the tests' stacks use a fresh one each).
STATE_CONTAINER = "mlops-state"
TRAFFIC_PER_SECOND = 10.0  # enough for the policy's min_requests (20) at a 10 % step in one 30 s tick
TRAFFIC_ENDPOINT = ("prod", "credit-risk")  # the endpoint the shipped policy rolls out to
REASON_LINES = 8  # a notification's reason as printed: enough for a gate table, short enough to scan
PEOPLE = ("alice@contoso.test (registers models), bob (approves), carol (operates), dave (reads), erin "
          "(administers)")


def policy_with_review(workdir: Path) -> Path:
    """The app's policy with a review step in each rule, written to `workdir/policy.yaml`."""
    from tools.demo import demo_policy

    return demo_policy(workdir)


@contextlib.contextmanager
def by_hand_stack(workdir: Path, host_port: int = 7071, azureml_port: int = 8443,
                  storage_port: int = 10000, entra_port: int = 8444, review: bool = False,
                  fast: bool = False) -> Iterator[Stack]:
    """The stack `./dev host` runs: every port fixed and every piece of state kept in `workdir`. With
    `review`, the app's policy gets the review step (`./dev host --review`): a version that passes its gates
    waits for an approver. `fast` (the tests') ticks the rollouts every second instead of every 30 s."""
    workdir = workdir.resolve()
    settings = {"MLOPS_STATE_CONTAINER": STATE_CONTAINER}
    if review:
        workdir.mkdir(parents=True, exist_ok=True)
        settings["MLOPS_POLICY_PATH"] = str(policy_with_review(workdir))
    with contextlib.ExitStack() as stack:
        azurite = stack.enter_context(running_azurite(location=str(workdir / "azurite"), blob_port=storage_port,
                                                      queue_port=storage_port + 1, table_port=storage_port + 2))
        running = stack.enter_context(local_stack(
            workdir, extra_settings=settings, fast=fast, azurite=azurite, host_port=host_port,
            azureml_port=azureml_port, azureml_state=workdir / "localaml" / "state.json", entra_port=entra_port,
        ))
        # Runs through first on the way out: jobs still running when the host stops would otherwise retry
        # their events to it for seconds. What they miss, the resync after the next start catches up on.
        stack.callback(running.aml.service.events.urls.clear)
        write_atomically(workdir / CONNECTION_FILE, json.dumps(connection(running), indent=2))
        yield running


def connection(stack: Stack) -> dict[str, Any]:
    """How to reach every part of a running stack; `./dev register` and `./dev send` read it from the file."""
    keys = stack.host.keys
    return {
        "host": stack.host.url,
        "functionKey": keys.function,
        "eventGridKey": keys.eventgrid_extension,
        "storage": stack.azurite.connection_string,
        "controlRoom": f"{stack.host.url}/api/ops/controlroom",
        "policy": stack.host.settings.get("MLOPS_POLICY_PATH", "policy/policy.yaml"),
        "receiver": f"{stack.receiver.url}/received",
        "azureml": stack.aml.app_settings(),
    }


def read_connection(workdir: Path = WORKDIR) -> dict[str, Any]:
    """What `./dev host` wrote about the stack it runs; SystemExit with what to do when it has not run."""
    path = workdir / CONNECTION_FILE
    if not path.exists():
        raise SystemExit(f"{path} is missing: start the stack with ./dev host first")
    return dict(json.loads(path.read_text()))


def reach_lines(info: dict[str, Any], workdir: Path) -> list[str]:
    """What `./dev host` prints: an address, key or setting for each part of the stack."""
    aml = info["azureml"]
    return [
        f"Functions host      {info['host']}   (log: {workdir / 'host.log'})",
        f"  function key      {info['functionKey']}   (machines' routes only: health, scoring; all keys: "
        f"{workdir / 'keys.json'})",
        f"  control room      {info['controlRoom']}   (sign in as bob to approve, carol to operate, erin as admin)",
        "  admin API         people sign in: python -m opsctl login (device code), then python -m opsctl whoami",
        f"  Event Grid hook   {info['host']}/runtime/webhooks/eventgrid?functionName=aml_events"
        f"&code={info['eventGridKey']}",
        f"  policy            {info['policy']}",
        f"App storage         {info['storage']}",
        f"Entra ID (local)    {aml['MLOPS_AUTH_AUTHORITY']}/{aml['MLOPS_AUTH_TENANT_ID']}",
        f"  people            {PEOPLE}; each one's password is <name>-local-password",
        f"  its CA            {aml['REQUESTS_CA_BUNDLE']}: a browser warns at sign-in until you trust it; "
        "opsctl trusts it for a local app",
        f"  the app signs in  as AZURE_CLIENT_ID={aml['AZURE_CLIENT_ID']} (its secret: AZURE_CLIENT_SECRET in "
        f"{workdir / CONNECTION_FILE})",
        f"Azure ML (local)    {aml['MLOPS_AZUREML_ENDPOINT']}   (CA bundle: {aml['REQUESTS_CA_BUNDLE']})",
        f"  its clients need  REQUESTS_CA_BUNDLE (above) and HTTPS_PROXY={aml['HTTPS_PROXY']} (its storage)",
        f"  workspaces        {', '.join(workspace_names(aml))}; registry {aml['MLOPS_REGISTRY']}"
        f"   (ids: MLOPS_WORKSPACES in {workdir / CONNECTION_FILE})",
        f"Notifications       {info['receiver']}   (each one is printed below as it arrives)",
        f"State is kept in {workdir}/ across restarts; {workdir / CONNECTION_FILE} has all of the above.",
        "Next: ./dev register (a new model version, registered by alice), ./dev send samples/events (README: By hand),",
        "      python -m opsctl login, python -m opsctl lifecycles, or the calls in test.http. Ctrl-C stops (the "
        "state is kept).",
    ]


def workspace_names(app_settings: dict[str, str]) -> list[str]:
    """The logical workspace names of `MLOPS_WORKSPACES` (`dev=<id>,prod=<id>`)."""
    return [pair.partition("=")[0] for pair in app_settings["MLOPS_WORKSPACES"].split(",")]


def reason_lines(body: Any) -> list[str]:
    """Why a notification was sent, from the webhook's document (which carries it whole): its summary (the
    rollback's cause, the job's error and the end of its log, the failed gates), else the gates of its table
    that did not pass."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or "summary" not in data:
        return []
    lines = [line for line in str(data.get("summary") or "").splitlines() if line.strip()]
    table = data.get("table") or {}
    header, rows = table.get("header") or [], table.get("rows") or []
    failing = [row for row in rows if not str(row[-1]).lower().startswith("pass")]  # `pass (no champion yet)`
    if failing and not lines and list(header[:4]) == ["metric", "check", "value", "threshold"]:
        lines = ["failed gates: " + ", ".join(f"{metric} {value} (needs {check} {threshold})"
                                              for metric, check, value, threshold, *_ in failing)]
    shown = lines[:REASON_LINES] + ([f"... {len(lines) - REASON_LINES} more lines"] if len(lines) > REASON_LINES
                                    else [])
    return ["    " + line for line in shown]


def echo_notifications(receiver: Receiver, stop: threading.Event, interval: float = 0.5) -> None:
    """Print a line (time, channel, kind, severity, title) for each notification the receiver gets, and under
    it the reason the webhook's document gives."""
    seen = 0
    while not stop.wait(interval):
        received = receiver.received
        for item in received[seen:]:
            print(describe(item), flush=True)
            for line in reason_lines(item.body):
                print(line, flush=True)
        seen = len(received)


def client_traffic(stack: Stack, per_second: float) -> contextlib.AbstractContextManager[object]:
    """Clients of the prod endpoint at `per_second` requests a second, or nothing at 0."""
    if per_second <= 0:
        return contextlib.nullcontext()
    workspace, endpoint = TRAFFIC_ENDPOINT
    return TrafficGenerator(stack.aml, workspace, endpoint, per_second=per_second)


def rate(text: str) -> float:
    """`--traffic`: requests a second, 0 (off) to 200."""
    value = float(text)
    if not 0 <= value <= 200:
        raise argparse.ArgumentTypeError(f"{text}: requests a second from 0 (off) to 200")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7071, help="the Functions host's port")
    parser.add_argument("--azureml-port", type=int, default=8443, help="the local Azure ML service's port")
    parser.add_argument("--storage-port", type=int, default=10000,
                        help="Azurite's blob port (queue, table: the next two)")
    parser.add_argument("--entra-port", type=int, default=8444, help="the local Entra ID's port")
    parser.add_argument("--review", action="store_true",
                        help="the app's policy with a review step: a version that passes waits for an approver")
    parser.add_argument("--traffic", type=rate, default=TRAFFIC_PER_SECOND, metavar="PER_SECOND",
                        help=f"client requests a second to prod/{TRAFFIC_ENDPOINT[1]} (default "
                        f"{TRAFFIC_PER_SECOND:g}; 0: none)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"Starting the local stack in {args.workdir}/ (the first start seeds the local Azure ML service)...",
          flush=True)
    with by_hand_stack(args.workdir, args.port, args.azureml_port, args.storage_port, args.entra_port,
                       args.review) as stack:
        for line in reach_lines(connection(stack), args.workdir):
            print(line, flush=True)
        if args.workdir.resolve() == (Path.cwd() / WORKDIR).resolve():  # opsctl finds `.localdev/` in a checkout
            print(f"opsctl finds this stack from any folder: {remember_local_stack(Path.cwd())}", flush=True)
        print(f"Client traffic      prod/{TRAFFIC_ENDPOINT[1]}: " + (
            f"{args.traffic:g} requests/s (--traffic changes it, 0 stops it)" if args.traffic else "off"), flush=True)
        echo = threading.Thread(target=echo_notifications, args=(stack.receiver, stop), daemon=True)
        echo.start()
        with client_traffic(stack, args.traffic):
            stop.wait()
    print("Stopped; the state is saved.", flush=True)


if __name__ == "__main__":
    main()
