"""A local range worker: drains `scoring-ranges` as the Functions host does, for several processes.

The host keeps a message invisible while its function runs, retries it when the
function fails or the instance dies (the message reappears after its visibility
timeout) and gives up after five attempts; this loop does the same, so tests and
benchmarks run the fan-out with real processes on Azurite:

    python -m shared.scoring.worker --idle-exit 5
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time

from azure.storage.queue import QueueClient, QueueMessage

from shared.adapters import telemetry
from shared.scoring.jobs import Scoring, run_range

MAX_DEQUEUE = 5
log = logging.getLogger(__name__)


def drain(ports: Scoring, visibility: int = 30, idle_exit: float = 5.0) -> int:
    """Score ranges until the queue has been empty for `idle_exit` seconds; return how many were scored."""
    queue = ports.queue.client
    handled, idle_since = 0, time.monotonic()
    while time.monotonic() - idle_since < idle_exit:
        messages = list(queue.receive_messages(max_messages=1, visibility_timeout=visibility))
        if not messages:
            time.sleep(0.2)
            continue
        message = messages[0]
        item = json.loads(message.content)
        with _keep_invisible(queue, message, visibility) as current:
            try:
                final = (message.dequeue_count or 0) >= MAX_DEQUEUE
                with telemetry.scoring_range(item):
                    run_range(item["job"], int(item["range"]), ports, final_attempt=final)
            except Exception:
                log.exception("range %s failed (attempt %s)", item, message.dequeue_count)
                if (message.dequeue_count or 0) < MAX_DEQUEUE:
                    continue
        queue.delete_message(message.id, current["receipt"])
        handled += 1
        idle_since = time.monotonic()
    return handled


class _keep_invisible:  # noqa: N801 - used as a context manager
    """Renew the message's invisibility while the range runs, as the host renews its lease."""

    def __init__(self, queue: QueueClient, message: QueueMessage, visibility: int) -> None:
        self._queue, self._message, self._visibility = queue, message, visibility
        self._stop = threading.Event()
        self.current: dict[str, str | None] = {"receipt": message.pop_receipt}

    def __enter__(self) -> dict[str, str | None]:
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()
        return self.current

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self._visibility / 3):
            updated = self._queue.update_message(
                self._message.id, self.current["receipt"], visibility_timeout=self._visibility)
            self.current["receipt"] = updated.pop_receipt


def main() -> None:
    from shared.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visibility", type=int, default=30, help="seconds a message stays invisible per lease")
    parser.add_argument("--idle-exit", type=float, default=5.0, help="stop after the queue was empty this long")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    drain(Scoring.from_settings(get_settings()), args.visibility, args.idle_exit)


if __name__ == "__main__":
    main()
