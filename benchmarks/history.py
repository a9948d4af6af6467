"""An endpoint's rollout history on Azurite: `GET /api/ops/rollouts/{ws}/{ep}/history` before it paged (every
archived rollout of the endpoint read from the index, validated and sorted) and now (a page of `--limit`, one
index query), measured in one run on the same seeded state.

    python benchmarks/history.py [--sizes 100,1000,3000] [--limit 100] [--runs 20]

For each size, a fresh state container on a really started Azurite holds, in today's layout (blobs only), that
many archived rollouts of one endpoint (as `benchmarks/controlroom.py` writes them: a mirror phase, steps,
analyses every minute, how it ended) and 50 of another; the app's first start indexes them (timed). Then, through
the app's HTTP layer in process, `--runs` requests each, taken in turn:

- before: the route as it answered before it paged: the same HTTP layer and handler on `rollout.history` as it
  was (`archived_rollouts.list(prefix=...)` sorted newest first: every archived rollout of the endpoint);
- the first page, and a page deep in the history (its `next` followed to the middle), of `--limit`.

Each with its p50/p95 and the storage requests it made (counted on the clients, each attempt).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from controlroom import rollout
from fleet import Calls, measured, percentiles, services_on

from devhost.azurite import running_azurite
from shared.adapters.storage.stores import Listed, Page
from shared.bootstrap import Services
from shared.domain.records import Rollout as RolloutRecord
from shared.domain.records import RolloutState
from shared.ops.http import serve
from shared.ops.routes import by_function
from shared.reactor import rollout as engine
from shared.reactor.rollout import archive_key

START = datetime(2024, 1, 1, tzinfo=UTC)


def seed(services: Services, endpoint: int, count: int, rng: random.Random) -> str:
    """`count` archived rollouts of endpoint number `endpoint` in today's layout (blobs only); its name."""
    states = [RolloutState.SUCCEEDED, RolloutState.ROLLED_BACK]
    records = [rollout(endpoint, "credit-risk", 10 + number, rng.choice(states), START + timedelta(hours=6 * number),
                       rng) for number in range(count)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda record: services.state.blobs.put("rollout-archive", archive_key(record),
                                                              record.stored()), records))
    return records[0].endpoint


def history(services: Services, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
    function = by_function()["ops_rollout_action"]
    request = func.HttpRequest("GET", f"http://host/api/ops/rollouts/prod/{endpoint}/history", params=params,
                               route_params={"workspace": "prod", "endpoint": endpoint, "action": "history"},
                               body=b"", headers={"Authorization": "Bearer bench"})
    response = serve(function, request, lambda: services)
    if response.status_code != 200:
        raise RuntimeError(f"history {params}: {response.status_code} {response.get_body()[:300]!r}")
    return dict(json.loads(response.get_body()))


def before(services: Services, key: str, limit: int = 100, token: str | None = None) -> Page[RolloutRecord]:
    """`rollout.history` as it was before it paged: every archived rollout of the endpoint, and the current one
    when it has ended, sorted newest first (the route answered them all)."""
    records = services.state.archived_rollouts.list(prefix=f"{key}.")
    found = services.state.rollouts.get(key)
    if found is not None and found.state.has_ended:
        records.append(found)
    unique = {(record.id, record.started): record for record in records if record.key == key}
    ordered = sorted(unique.values(), key=lambda record: record.started, reverse=True)
    return Page([Listed(record.key, functools.partial(lambda kept: kept, record)) for record in ordered], None)


def the_route_before(services: Services, endpoint: str) -> dict[str, Any]:
    """The route as it answered before: the same HTTP layer and handler, on the history as it was read then."""
    paged = engine.history
    engine.history = before
    try:
        return history(services, endpoint, {})
    finally:
        engine.history = paged


def sized(connection: str, count: int, args: argparse.Namespace) -> dict[str, Any]:
    calls = Calls()
    container = f"history-{count}-{random.getrandbits(24):06x}"
    services = services_on(connection, container, calls, indexed=True)
    rng = random.Random(count)
    endpoint = seed(services, 1, count, rng)
    seed(services, 2, 50, rng)
    started = time.perf_counter()
    services.state.archived_rollouts.listing(prefix="~")  # the first start: what is stored is indexed
    figures: dict[str, Any] = {"archived": count, "first_start_s": time.perf_counter() - started}
    deep: dict[str, str] = {"limit": str(args.limit)}
    for _ in range(count // args.limit // 2):  # the middle of the history
        deep = {"limit": str(args.limit), "next": history(services, endpoint, deep)["next"]}
    ways = {"before (every archived rollout)": functools.partial(the_route_before, services, endpoint),
            "first page": functools.partial(history, services, endpoint, {"limit": str(args.limit)}),
            "a page in the middle": functools.partial(history, services, endpoint, deep)}
    samples: dict[str, list[float]] = {name: [] for name in ways}
    made: dict[str, list[int]] = {name: [] for name in ways}
    for way in ways.values():
        way()
    for _ in range(args.runs):  # one of each in turn: a load that drifts weighs on every way alike
        for name, way in ways.items():
            seconds, requests = measured(calls, way)
            samples[name].append(seconds)
            made[name].append(requests)
    figures.update({name: (*percentiles(samples[name]), statistics.median(made[name])) for name in ways})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,3000")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with running_azurite() as azurite:
        results = [sized(azurite.connection_string, int(size), args) for size in args.sizes.split(",")]
    print(f"An endpoint's history, page of {args.limit}: p50 / p95 ms, storage requests (median)")
    for found in results:
        print(f"\n{found['archived']:,} archived rollouts of the endpoint "
              f"(first start: {found['first_start_s']:.1f} s)")
        for name, value in found.items():
            if isinstance(value, tuple):
                p50, p95, made = value
                print(f"  {name:<34} {p50 * 1000:8.1f} / {p95 * 1000:8.1f} ms  {made:.0f} req")
    first, last = results[0], results[-1]
    for name in ("before (every archived rollout)", "first page"):
        print(f"{name}: p50 at {last['archived']:,} / at {first['archived']:,} = "
              f"{last[name][0] / first[name][0]:.1f}x")


if __name__ == "__main__":
    main()
