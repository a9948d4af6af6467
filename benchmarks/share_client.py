"""What a share's own client costs, against what a lock would make other calls wait, on the local Azure ML stack.

azure-ai-ml's `models.share` switches its client's scope (all its operation kinds) to the registry's while
it runs, so a share cannot run on the client other threads use (shared/adapters/azureml/clients.py). Two
ways out: a client made for each share (`Clients.dedicated`, what the app does), or one lock held by a share
and by every other call of that workspace's client. This prints:
- the cost of making a workspace client (`Clients.dedicated`, no request);
- how long a promotion (share + registry read + tags) takes: how long the lock would be held;
- get_model latency from reader threads while promotions run, with a dedicated client per share and
  with the lock.

    python benchmarks/share_client.py [--shares 6] [--readers 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.localaml import running_local_azureml
from localaml import samples
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import ModelVersion
from shared.settings import Settings

REGISTRY = "registry:shared"


def ms(spans: list[float]) -> str:
    spans = sorted(spans)
    return f"p50 {statistics.median(spans):7.1f} ms  p95 {spans[int(len(spans) * 0.95)]:7.1f} ms  (n={len(spans)})"


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


@contextmanager
def locked(platform: AzureMLPlatform) -> Iterator[None]:
    """The lock alternative: shares on the cached client, each share and each read holding one lock."""
    lock = threading.Lock()
    clients: Any = platform._clients
    share, get_model = platform._share, platform.get_model

    def locked_share(model: ModelVersion, target: str) -> ModelVersion:
        with lock:
            return share(model, target)

    def locked_get(location: str, name: str, version: str) -> ModelVersion:
        if location.startswith("registry:"):
            return get_model(location, name, version)
        with lock:
            return get_model(location, name, version)

    dedicated = clients.dedicated
    clients.dedicated = clients.ml
    platform._share, platform.get_model = locked_share, locked_get  # type: ignore[method-assign]
    try:
        yield
    finally:
        clients.dedicated = dedicated
        platform._share, platform.get_model = share, get_model  # type: ignore[method-assign]


def contention(platform: AzureMLPlatform, models: list[ModelVersion], readers: int) -> tuple[list[float], float]:
    """get_model latencies of `readers` threads while `models` are promoted from as many threads; the wall time."""
    spans: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            spans.append(timed(lambda: platform.get_model("dev", "bench-read", "1")))

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    shares = [threading.Thread(target=platform.promote_model, args=(model, REGISTRY)) for model in models]
    for thread in shares:
        thread.start()
    for thread in shares:
        thread.join()
    wall = (time.perf_counter() - started) * 1000
    done.set()
    for thread in threads:
        thread.join()
    return spans, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shares", type=int, default=6)
    parser.add_argument("--readers", type=int, default=6)
    args = parser.parse_args()
    with running_local_azureml(Path(tempfile.mkdtemp(prefix="bench-share-")), registry="shared") as local:
        settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local.app_settings()})
        platform = AzureMLPlatform.from_settings(settings)
        local.register_model("dev", "bench-read", samples.good_model(seed=1), {})
        count = 3 * args.shares + 1
        models = [local.register_model("dev", f"bench-{i}", samples.good_model(seed=i), {}) for i in range(count)]
        sources = [ModelVersion(location="dev", name=m.name, version=m.version) for m in models]

        platform.get_model("dev", "bench-read", "1")  # the cached client made, the SDK imported
        make = [timed(lambda: platform._clients.dedicated("dev")) for _ in range(50)]
        alone = [timed(partial(platform.promote_model, m, REGISTRY)) for m in sources[:args.shares]]
        quiet = [timed(lambda: platform.get_model("dev", "bench-read", "1")) for _ in range(50)]
        own, own_wall = contention(platform, sources[args.shares:2 * args.shares], args.readers)
        with locked(platform):
            held, held_wall = contention(platform, sources[2 * args.shares:3 * args.shares], args.readers)

    print(f"making a workspace client (Clients.dedicated):   {ms(make)}")
    print(f"one promotion, nothing else running:             {ms(alone)}")
    print(f"get_model, nothing else running:                 {ms(quiet)}")
    print(f"{args.shares} promotions and {args.readers} reader threads at once:")
    for name, spans, wall in (("a client per share", own, own_wall), ("one lock", held, held_wall)):
        print(f"  {name + ':':<20}get_model {ms(spans)}, {len(spans) / wall * 1000:.0f} reads/s; "
              f"promotions done in {wall:.0f} ms")


if __name__ == "__main__":
    main()
