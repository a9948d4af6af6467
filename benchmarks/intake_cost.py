"""What one event costs: storage round trips (by what they touch) and CPU, in intake and in the worker.

Runs the app's own `intake.receive` and `worker.process` in this process, against a running Azurite,
with every storage request counted at the HTTP transport. The app is imported from `--root` (a checkout
of any revision), so that `benchmarks/webhook.py` can measure a baseline and the current tree in one run.
The worker is driven as the queue trigger drives it: messages received in batches, each deleted once
handled. Prints one JSON object.

    python benchmarks/intake_cost.py --root . --connection "$AZURITE" [--events 200]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def category(method: str, url: str) -> str:
    """What a storage request touches, from its URL (the app's blob layout and the queue's REST paths)."""
    path = url.split("?", 1)[0]
    for part in ("/ledger/", "/audit/", "/records/claims/"):
        if part in path:
            return part.strip("/").removeprefix("records/")
    if "/messages" in path:
        return {"POST": "queue send", "GET": "queue receive", "DELETE": "queue delete"}.get(method, "queue other")
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="the checkout whose app is measured")
    parser.add_argument("--connection", required=True, help="Azurite's connection string")
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))

    from azure.core.pipeline.transport import RequestsTransport

    from shared.bootstrap import Services, system_clock
    from shared.domain.work import WorkItem
    from shared.reactor import intake, worker
    from shared.settings import Settings
    from tools.send_events import generate

    counts: collections.Counter[str] = collections.Counter()
    send = RequestsTransport.send

    def counted(self: RequestsTransport, request: Any, **kwargs: Any) -> Any:
        counts[category(request.method, request.url)] += 1
        return send(self, request, **kwargs)

    RequestsTransport.send = counted
    values = {"AzureWebJobsStorage": args.connection, "MLOPS_STATE_CONTAINER": f"cost-{uuid.uuid4().hex[:8]}"}
    settings = Settings.from_environ(values)
    state, queue = intake.fast_stores(settings)
    services = Services.from_settings(settings)
    events = [generate("drift", "dev", "bench-model", "1", 0.9) for _ in range(args.events + 1)]
    for event in events:
        event["data"]["DataDriftName"] = "unwatched-monitor"
    intake.receive(events.pop(), state, queue, clock=system_clock)  # creates the container and the queue
    counts.clear()

    cpu = time.process_time()
    for event in events:
        intake.receive(event, state, queue, clock=system_clock)
    intake_cpu, intake_counts = time.process_time() - cpu, dict(counts)
    counts.clear()

    cpu, handled = time.process_time(), 0
    while handled < args.events + 1:
        batch = list(queue.client.receive_messages(messages_per_page=16, max_messages=16, visibility_timeout=60))
        for message in batch:
            worker.process(WorkItem.model_validate_json(message.content), services)
            queue.client.delete_message(message)
        handled += len(batch)
    worker_cpu, worker_counts = time.process_time() - cpu, dict(counts)

    def per_event(found: dict[str, int], seconds: float, events: int) -> dict[str, float]:
        return {**{name: round(n / events, 2) for name, n in sorted(found.items())},
                "round trips": round(sum(found.values()) / events, 2), "cpu ms": round(seconds * 1000 / events, 2)}

    print(json.dumps({"intake": per_event(intake_counts, intake_cpu, args.events),
                      "worker": per_event(worker_counts, worker_cpu, handled)}))


if __name__ == "__main__":
    main()
