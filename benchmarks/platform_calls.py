"""The cost of one platform call through azure-ai-ml, against the local Azure ML service.

Starts the local service (seeded as `./dev demo` seeds it), registers a model and runs its
test job, then times the app's adapter calls one after another, each against the same
request made with plain `requests` (same TLS, same token), so the ratio is what the SDK
adds on top of the HTTP round trip:
- get_model (one GET), get_endpoint (endpoint + deployments list), get_job of a completed
  job (job GET + workspace GET once + MLflow runs/get and runs/search);
- the first call of a process (the SDK's import and client construction) separately.

    python benchmarks/platform_calls.py [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.localaml import running_local_azureml
from localaml import jobs, samples
from shared.adapters.azureml import AzureMLPlatform
from shared.settings import Settings

TEST_DATA = "azureml://datastores/workspaceblobstore/paths/test-data/"


def timed(call: Callable[[], object], count: int) -> list[float]:
    """Milliseconds of each of `count` calls, after one warm-up call."""
    call()
    spans = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        spans.append((time.perf_counter() - started) * 1000)
    return sorted(spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with running_local_azureml(Path(tempfile.mkdtemp(prefix="bench-platform-"))) as local:
        settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local.app_settings()})
        started = time.perf_counter()
        platform = AzureMLPlatform.from_settings(settings)
        model = local.register_model("dev", "bench", samples.good_model(seed=1), {})
        first_ms = (time.perf_counter() - started) * 1000
        platform.submit_job("dev", "bench-test", "model-test", {"model": model.uri, "test_data": TEST_DATA}, {})
        jobs.wait(local.service, "dev", "bench-test")

        session = requests.Session()
        session.verify = str(local.certificates.ca_file)
        session.headers["Authorization"] = "Bearer " + local.clients().arm_token()
        version_url = (f"{local.url.rstrip('/')}{local.service.workspace_id('dev')}/models/bench/versions/1"
                       "?api-version=2023-08-01-preview")

        rows = [
            ("get_model (SDK)", timed(lambda: platform.get_model("dev", "bench", "1"), args.calls)),
            ("  same GET (requests)", timed(lambda: session.get(version_url).raise_for_status(), args.calls)),
            ("get_endpoint (SDK)", timed(lambda: platform.get_endpoint("prod", "credit-risk"), args.calls)),
            ("get_job, completed (SDK)", timed(lambda: platform.get_job("dev", "bench-test"), args.calls // 4)),
        ]
    print(f"calls per figure: {args.calls} (get_job: {args.calls // 4}), one client, loopback TLS")
    print(f"first call of a process (import, clients, upload and register a model): {first_ms:.0f} ms")
    print(f"{'call':<28}{'p50 ms':>9}{'p95 ms':>9}")
    for name, spans in rows:
        print(f"{name:<28}{statistics.median(spans):9.2f}{spans[int(len(spans) * 0.95)]:9.2f}")
    sdk, raw = statistics.median(rows[0][1]), statistics.median(rows[1][1])
    print(f"azure-ai-ml over a plain GET: {sdk / raw:.1f}x ({sdk - raw:.2f} ms a call)")


if __name__ == "__main__":
    main()
