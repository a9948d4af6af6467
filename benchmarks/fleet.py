"""A platform team's fleet on Azurite: what the resync, the rollout tick and the listing routes cost, before
the state index (every record downloaded) and with it, measured in one run on the same seeded state.

    python benchmarks/fleet.py [--sizes 1000,10000] [--huge] [--before-up-to 10000] [--endpoints 300]
                               [--audit 100000] [--runs 30] [--json] [--compare-tags 2000]

For each fleet size (versions; `--huge` adds 100,000), a fresh state container on a really started
Azurite (blob and table services) is seeded in today's layout, fast (16 uploads at once, audit lines
appended 500 to a block):

- lifecycles as `benchmarks/controlroom.py` writes them (histories, metrics, gate tables), about 500
  of them in flight: 167 models, each with its three newest versions testing, waiting for review
  or rolling out, and live, the others finished;
- `--endpoints` endpoints, each with its current rollout and three archived ones (their history);
- `--audit` audit entries.

Then the app starts on it (its first start indexes what is stored: timed), and it prints, each with the
storage requests it made (counted on the clients, each attempt):

- the resync (`reactions.resync`), before (the same code on stores without the index, which list every
  record as the app did before it) and after. The lifecycles it reconciles are of rules the policy does not
  have, so that a reconcile reads the record under its lease and asks no platform: this measures storage;
- the rollout tick's listing (before: every rollout; after: the index's ticked ones);
- each listing route's p50/p95 for a page of 100 (`--runs` requests through the app's HTTP layer,
  in process), and before, `GET /api/ops/lifecycles` as it was (every record, no page).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from controlroom import lifecycle, seeded_rollouts

from devhost.azurite import running_azurite
from shared.adapters.storage.index import TableIndex, table_name
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Stores
from shared.bootstrap import Services
from shared.domain.lifecycle import watched
from shared.domain.people import Person, Role
from shared.domain.records import AuditEntry
from shared.ops.http import serve
from shared.ops.routes import by_function
from shared.reactor import reactions
from shared.settings import Settings
from tests.unit.test_isolation_fakes import FakeClock, FakeNotifier, FakePlatform

MODELS_IN_FLIGHT = 167  # x 3 newest versions each in flight: 501
FAMILIES = ("credit-risk", "churn", "fraud", "demand-forecast")
ROUTES = [("ops/lifecycles", {}), ("ops/lifecycles", {"stage": "testing"}), ("ops/rollouts", {}),
          ("ops/rollouts", {"state": "progressing"}), ("ops/events/setaside", {}), ("ops/audit", {}),
          ("ops/audit", {"action": "rollout"})]


class Calls:
    """Counts the storage requests of the clients it hooks."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Any) -> None:
        self.count += 1


class Reader:
    def verify(self, token: str) -> Person:
        return Person(oid="oid-bench", name="bench", roles=frozenset({Role.READER}))


def services_on(connection: str, container: str, calls: Calls, indexed: bool) -> Services:
    """The app's services as `Services.from_settings` wires them (without the index: as before it)."""
    hook: dict[str, Any] = {"raw_request_hook": calls}
    blobs = BlobStateStore(BlobServiceClient.from_connection_string(connection, **hook), container)
    index = TableIndex(TableServiceClient.from_connection_string(connection, **hook), table_name(container)) \
        if indexed else None
    settings = Settings.from_environ({"AzureWebJobsStorage": connection, "MLOPS_STATE_CONTAINER": container})
    services = Services(settings=settings, state=Stores(blobs, index), work_queue=None,  # type: ignore[arg-type]
                        clock=FakeClock(), _platform=FakePlatform(),  # type: ignore[arg-type]
                        _notifier=FakeNotifier())  # type: ignore[arg-type]
    services._identities = Reader()
    return services


def seed(state: BlobStateStore, versions: int, endpoints: int, audit: int) -> dict[str, int]:
    """Today's layout: one blob per record, the audit trail in day blobs. Returns what was written."""
    rng = random.Random(23)
    per_model = max(4, -(-versions // MODELS_IN_FLIGHT))
    documents: list[tuple[str, str, dict[str, Any]]] = []
    for number in range(MODELS_IN_FLIGHT):
        model = f"{FAMILIES[number % 4]}-{number:03d}"
        for version in range(1, per_model + 1):
            record = lifecycle(model, version, per_model, rng)
            documents.append(("lifecycle", record.key, record.stored()))
    documents = documents[:versions]
    documents.extend(seeded_rollouts(endpoints, rng))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda document: state.put(*document), documents))
    now = datetime.now(UTC)
    lines = [AuditEntry(time=now - timedelta(seconds=audit - n), correlation_id=f"c{n:07d}", subject=f"m:{n}",
                        action=("lifecycle", "rollout", "notify")[n % 3], outcome="done",
                        reason="promoted to registry:shared").model_dump_json().encode() + b"\n"
             for n in range(audit)]
    blocks = [(f"audit/{(now - timedelta(seconds=audit - n)):%Y-%m-%d}.jsonl", b"".join(lines[n:n + 500]))
              for n in range(0, audit, 500)]
    for name, block in blocks:  # in order: a day's entries stay oldest first
        state.append_lines(name, block)
    in_flight = sum(1 for kind, _, doc in documents if kind == "lifecycle" and watched(_lifecycle(doc)))
    return {"lifecycles": sum(kind == "lifecycle" for kind, _, _ in documents), "in_flight": in_flight,
            "rollouts": sum(kind == "rollout" for kind, _, _ in documents),
            "archived": sum(kind == "rollout-archive" for kind, _, _ in documents), "audit": audit}


def _lifecycle(document: dict[str, Any]) -> Any:
    from shared.domain.records import Lifecycle

    return Lifecycle.model_validate(document)


def measured(calls: Calls, action: Callable[[], Any]) -> tuple[float, int]:
    before, start = calls.count, time.perf_counter()
    action()
    return time.perf_counter() - start, calls.count - before


def get(services: Services, path: str, params: dict[str, str]) -> func.HttpResponse:
    routes = next(routes for routes in by_function().values() if routes[0].path == path)
    request = func.HttpRequest("GET", f"http://host/api/{path}", params=params, body=b"",
                               headers={"Authorization": "Bearer bench"})
    response = serve(routes, request, lambda: services)
    if response.status_code != 200:
        raise RuntimeError(f"{path} {params}: {response.status_code} {response.get_body()[:300]!r}")
    return response


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def fleet(connection: str, versions: int, args: argparse.Namespace) -> dict[str, Any]:
    container = f"fleet-{versions}-{random.getrandbits(24):06x}"
    calls = Calls()
    before = services_on(connection, container, calls, indexed=False)
    start = time.perf_counter()
    seeded = seed(before.state.blobs, versions, args.endpoints, args.audit)
    figures: dict[str, Any] = {"versions": versions, "seeded": seeded, "seed_s": time.perf_counter() - start}

    # Before the index: the resync, the tick and GET ops/lifecycles listed every record (and loaded it).
    figures["resync_before"] = figures["tick_before"] = figures["lifecycles_before"] = None
    if versions <= args.before_up_to:
        reactions.resync(before)  # settles what a first resync writes (incident markers)
        figures["resync_before"] = measured(calls, lambda: reactions.resync(before))
        figures["tick_before"] = measured(calls, lambda: [r for r in before.state.rollouts.list()])
        figures["lifecycles_before"] = measured(calls, lambda: before.state.lifecycles.list())

    after = services_on(connection, container, calls, indexed=True)
    figures["first_start"] = measured(calls, lambda: after.state.index.ready())  # type: ignore[union-attr]
    reactions.resync(after)  # settles what a first resync writes (incident markers)
    figures["resync_after"] = measured(calls, lambda: reactions.resync(after))
    figures["tick_after"] = measured(calls, lambda: after.state.rollouts.listing(where={"ticked": True}))
    routes = {}
    for path, params in ROUTES:
        samples: list[float] = []
        requests: list[int] = []
        query = {**params, "limit": "100"}
        for _ in range(args.runs):
            seconds, made = measured(calls, functools.partial(get, after, path, query))
            samples.append(seconds)
            requests.append(made)
        routes[f"{path}?{'&'.join(f'{k}={v}' for k, v in params.items())}".rstrip("?")] = (
            *percentiles(samples), statistics.median(requests))
    figures["routes"] = routes
    return figures


def compare_tags(connection: str, records: int, in_flight: int, runs: int) -> dict[str, tuple[float, float, float]]:
    """Blob index tags against the table, on the same records: `records` lifecycles, `in_flight` of them
    tagged (and indexed) as in flight; each way's p50/p95 seconds and requests to list the in-flight ones with
    their documents (tags: Find Blobs by Tags, then a download each; the table: one query)."""
    rng = random.Random(5)
    calls = Calls()
    container = f"tags-{random.getrandbits(24):06x}"
    service = BlobServiceClient.from_connection_string(connection, raw_request_hook=calls)
    blobs = service.get_container_client(container)
    blobs.create_container()
    indexed = services_on(connection, container, calls, indexed=True)
    documents = []
    for number in range(records):
        record = lifecycle(f"m{number % 50}", number, 10**9, rng)
        flying = number < in_flight
        documents.append((record.key, record.stored(), flying))

    def upload(found: tuple[str, dict[str, Any], bool]) -> None:
        key, document, flying = found
        blobs.upload_blob(f"records/lifecycle/{key}.json", json.dumps(document), overwrite=True,
                          tags={"inflight": str(flying).lower()})
        indexed.state.index.put("lifecycle", key, document, {"inflight": flying})  # type: ignore[union-attr]

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(upload, documents))
    indexed.state.index._ready = True  # type: ignore[union-attr]  # indexed above: no first-start pass
    expression = f"@container='{container}' AND inflight='true'"

    def by_tags() -> int:
        names = [item.name for item in service.find_blobs_by_tags(expression)]
        def download(name: str) -> bytes:
            return blobs.download_blob(name).readall()

        with ThreadPoolExecutor(8) as pool:
            return len(list(pool.map(download, names)))

    def by_table() -> int:
        return len(indexed.state.lifecycles.listing(where={"inflight": True}))

    figures = {}
    for name, way in (("blob index tags", by_tags), ("table", by_table)):
        if way() != in_flight:
            print(f"{name} found {way()} of the {in_flight} in flight", file=sys.stderr)
        samples, made = [], []
        for _ in range(runs):
            seconds, requests = measured(calls, way)
            samples.append(seconds)
            made.append(requests)
        figures[name] = (*percentiles(samples), statistics.median(made))
    return figures


def report(results: list[dict[str, Any]]) -> None:
    print("\nSeeded (per fleet): lifecycles (in flight), endpoints' rollouts (+ archived), audit entries; seconds")
    for found in results:
        s = found["seeded"]
        print(f"  {found['versions']:>7,} versions: {s['lifecycles']:,} ({s['in_flight']}), {s['rollouts']} "
              f"(+{s['archived']}), {s['audit']:,} in {found['seed_s']:.1f} s")
    print("\nFirst start (indexes today's layout): seconds, storage requests")
    for found in results:
        print(f"  {found['versions']:>7,} versions: {found['first_start'][0]:7.2f} s {found['first_start'][1]:>7,}")
    print("\nPer period (seconds, storage requests): before the index | with it")
    print(f"  {'versions':>9} {'resync before':>22} {'resync after':>22} {'tick before':>20} {'tick after':>18}")
    for found in results:
        rb, ra, tb, ta = (found[k] for k in ("resync_before", "resync_after", "tick_before", "tick_after"))
        in_flight = found["seeded"]["in_flight"]
        resync_before = f"{rb[0]:9.3f} s {rb[1]:>7,} req" if rb else f"{'not measured':>22}"
        tick_before = f"{tb[0]:8.3f} s {tb[1]:>5,} req" if tb else f"{'not measured':>20}"
        print(f"  {found['versions']:>9,} {resync_before} {ra[0]:9.3f} s {ra[1]:>7,} req "
              f"{tick_before} {ta[0]:7.3f} s {ta[1]:>3} req   "
              f"({ra[1] / max(1, in_flight):.1f} req per lifecycle in flight)")
    print("\nListing routes, a page of 100: p50 / p95 ms, storage requests per page")
    for found in results:
        lb = found["lifecycles_before"]
        before = f"{lb[0] * 1000:,.0f} ms, {lb[1]:,} requests" if lb else "not measured"
        print(f"  {found['versions']:,} versions (before: GET ops/lifecycles, every record: {before})")
        for route, (p50, p95, made) in found["routes"].items():
            print(f"    {route:<36} {p50 * 1000:7.1f} / {p95 * 1000:7.1f} ms  {made:.0f} req")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--huge", action="store_true", help="also 100,000 versions")
    parser.add_argument("--endpoints", type=int, default=300)
    parser.add_argument("--audit", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--before-up-to", type=int, default=10_000, metavar="N",
                        help="measure the figures before the index only up to N versions (at 100,000 each of "
                             "them takes about ten minutes here)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--compare-tags", type=int, metavar="N", default=0,
                        help="also list N/20 in-flight lifecycles of N by blob index tags and by the table")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")] + ([100_000] if args.huge else [])
    with running_azurite() as azurite:
        # First, on an account holding nothing else: Azurite's Find Blobs by Tags scans the account.
        tags = compare_tags(azurite.connection_string, args.compare_tags, args.compare_tags // 20, args.runs) \
            if args.compare_tags else {}
        results = []
        for versions in sizes:
            results.append(fleet(azurite.connection_string, versions, args))
            print(f"measured {versions:,} versions", file=sys.stderr)
    report(results)
    if tags:
        print(f"\nThe {args.compare_tags // 20} in-flight lifecycles of {args.compare_tags:,}, with their documents: "
              "p50 / p95 ms, requests")
        for name, (p50, p95, made) in tags.items():
            print(f"  {name:<16} {p50 * 1000:8.1f} / {p95 * 1000:8.1f} ms  {made:.0f} req")
    if args.json:
        print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
