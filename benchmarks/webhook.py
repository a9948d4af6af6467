"""Events per second through the local host's Event Grid webhook, on a real Azurite.

Sends unique DatasetDriftDetected events (for a monitor no rule watches, so each
reaction is cheap and the figure is the intake's) from several concurrent clients, one
event per request as Event Grid does by default, and reports:
- intake: events/s answered 202 (validated, de-duplicated in the ledger, audited, queued);
- end to end: events/s until the queue worker has recorded every one;
- the latency of the webhook answer (p50, p95), which must stay far below Event Grid's 30 s.

    python benchmarks/webhook.py [--events 600] [--clients 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import running_azurite
from devhost.process import HostProcess
from devhost.waiting import wait_until
from shared.adapters.storage.clients import blob_service
from shared.adapters.storage.state import BlobStateStore
from shared.settings import Settings
from tools.send_events import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    with running_azurite() as azurite:
        values = {
            "AzureWebJobsStorage": azurite.connection_string,
            "MLOPS_STATE_CONTAINER": f"bench-{uuid.uuid4().hex[:8]}",
            "MLOPS_RESYNC_SCHEDULE": "0 0 0 1 1 *",
            "MLOPS_ROLLOUT_SCHEDULE": "0 0 0 1 1 *",
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.2",
        }
        state = BlobStateStore(blob_service(Settings.from_environ(values)), values["MLOPS_STATE_CONTAINER"])
        with HostProcess(values, workdir / "keys.json", log_file=workdir / "host.log") as host:
            events = [generate("drift", "dev", "bench-model", "1", 0.9) for _ in range(args.events)]
            for event in events:
                event["data"]["DataDriftName"] = "unwatched-monitor"
            session = requests.Session()
            url = host.eventgrid_url

            def send(event: dict) -> float:
                started = time.perf_counter()
                response = session.post(url, json=[event], headers={"aeg-event-type": "Notification"}, timeout=30)
                assert response.status_code == 202, response.text
                return time.perf_counter() - started

            send(generate("drift", "dev", "warm-up", "1", 0.1))
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                latencies = list(pool.map(send, events))
            intake_seconds = time.perf_counter() - started
            ids = {event["id"] for event in events}
            wait_until(lambda: ids <= {e.correlation_id for e in state.read_audit() if e.action == "react"},
                       timeout=600, what=f"the reactions to all {len(ids)} events in the audit")
            end_to_end_seconds = time.perf_counter() - started

    latencies.sort()
    print(f"events: {args.events}, concurrent clients: {args.clients}")
    print(f"intake (webhook answered 202):   {args.events / intake_seconds:7.1f} events/s")
    print(f"end to end (reaction recorded):  {args.events / end_to_end_seconds:7.1f} events/s")
    print(f"webhook latency: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
