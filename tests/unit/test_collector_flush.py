"""The local Azure ML service's data collector: a flush returns only once the rows collected before it are written."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from localaml.collector import Collector

DEPLOYMENT = {
    "id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/prod"
          "/onlineEndpoints/credit-risk/deployments/blue",
    "properties": {"dataCollector": {"rollingRate": "Hour", "collections": {
        "model_inputs": {"dataCollectionMode": "Enabled"}, "model_outputs": {"dataCollectionMode": "Enabled"}}}},
}


class SlowStorage:
    """A blob service whose uploads take 0.2 s each; it keeps the names written."""

    def __init__(self) -> None:
        self.writing = threading.Event()
        self.written: list[str] = []

    def get_blob_client(self, container: str, blob: str) -> SimpleNamespace:
        def upload_blob(data: bytes, overwrite: bool) -> None:
            self.writing.set()
            time.sleep(0.2)
            self.written.append(blob)

        return SimpleNamespace(upload_blob=upload_blob)


def test_a_flush_waits_for_the_timer_s_flush_under_way() -> None:
    """A contract test listed the blobs right after `flush()` and missed green's outputs: the timer's flush had
    taken the rows and was still writing them, so the test's flush found nothing and returned at once."""
    storage = SlowStorage()
    collector = Collector(SimpleNamespace(storage=storage))  # type: ignore[arg-type]
    collector.flush_seconds = 0.01
    collector.collect(DEPLOYMENT, "request-1", [[0.1, 0.2]], {"predictions": [1]})
    assert storage.writing.wait(timeout=10), "the timer's flush started writing"

    collector.flush()

    assert len(storage.written) == 2 and all(name.endswith(".jsonl") for name in storage.written)
    assert {name.split("/")[3] for name in storage.written} == {"model_inputs", "model_outputs"}
