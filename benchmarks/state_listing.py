"""Listing a kind's records from the state store: one download after another, and concurrent.

    python benchmarks/state_listing.py [--records 20,200,1000] [--workers 1,4,8,10,16] [--runs 5] [--history 2]
                                       [--latency-ms 5] [--latency-records 200]

A really started Azurite (on loopback) holds, for each N of `--records`, N lifecycle records as
`benchmarks/controlroom.py` seeds them (stage histories, test metrics, gate tables), each history
written `--history` times over to reach the size of a version that went through its stages more
than once (2: about 3 KB a record), and the current rollouts of 20 endpoints (what `tick_all`
lists every tick). Each figure is the median of `--runs` listings, after one warm-up, through the
app's own blob client (`shared.adapters.storage.clients.blob_service`):

- `sequential`: the store's listing before it went concurrent (kept below as the baseline);
- `items(), W workers`: `BlobStateStore.items` with `listing_workers = W`;
- `names + metadata only`: the listing's pages without a download, the floor of any listing that
  would read what it needs from blob metadata instead of the records;
- `+ validate`: what `GET /api/ops/lifecycles` adds on top, `Lifecycle.model_validate` of each record.

Next to each wall time: the CPU time this process spent (every thread) and Azurite's.

On loopback a download is all CPU (about 1.6 ms of the client's, under the GIL, and Azurite's), so
the figures are measured again through a TCP proxy that holds each request `--latency-ms` before
passing it on, as the network to Azure Storage does (0: not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import random
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from controlroom import RULES, lifecycle, seeded_rollouts

from devhost.azurite import Azurite, free_port, running_azurite
from devhost.waiting import wait_until
from shared.adapters.storage.clients import blob_service
from shared.adapters.storage.state import BlobStateStore, blob_path, decode_part, encode_part
from shared.domain.records import Lifecycle
from shared.settings import Settings

Doc = dict[str, Any]
Figure = tuple[float, float, float]
"""Milliseconds: wall time, this process's CPU time, Azurite's CPU time."""
ENDPOINTS = 20


def delaying_proxy(target_port: int, listen_port: int, delay: float) -> None:
    """Forward loopback connections on `listen_port` to `target_port`, each chunk sent `delay` s late."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, late: float) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if late:
                    await asyncio.sleep(late)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_reader, server_writer, delay), pipe(server_reader, client_writer, 0))

    async def serve() -> None:
        server = await asyncio.start_server(connect, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def delayed(azurite: Azurite, delay_ms: float) -> Iterator[str]:
    """A connection string to Azurite's blob service through a proxy (its own process) `delay_ms` late."""
    port = free_port()
    proxy = multiprocessing.Process(target=delaying_proxy, args=(azurite.blob_port, port, delay_ms / 1000),
                                    daemon=True)
    proxy.start()
    try:
        wait_until(lambda: listens(port), timeout=10, what="the delaying proxy")
        yield azurite.connection_string.replace(f":{azurite.blob_port}/", f":{port}/")
    finally:
        proxy.terminate()
        proxy.join()


def sequential_items(store: BlobStateStore, kind: str, prefix: str = "") -> list[tuple[str, Doc]]:
    """The baseline: `BlobStateStore.items` as it was, each record downloaded after the one before."""
    folder = blob_path("records", kind) + "/"
    trimmed = prefix.rstrip(".")
    start = encode_part(trimmed) if trimmed else ""
    found = []
    for item in store.container.list_blobs(name_starts_with=folder + start):
        key = decode_part(item.name[len(folder):].removesuffix(".json"))
        if not key.startswith(prefix):
            continue
        blob = store.container.get_blob_client(item.name)
        with contextlib.suppress(ResourceNotFoundError):
            found.append((key, json.loads(blob.download_blob().readall())))
    return found


def names_only(store: BlobStateStore, kind: str) -> list[str]:
    """The listing's pages with each blob's metadata, and no download."""
    folder = blob_path("records", kind) + "/"
    return [item.name for item in store.container.list_blobs(name_starts_with=folder, include=["metadata"])]


def lifecycles(count: int, history: int) -> list[Doc]:
    """`count` lifecycle records over the four rules, each history written `history` times over."""
    rng = random.Random(count)
    per_rule = -(-count // len(RULES))
    docs = []
    for n in range(count):
        record = lifecycle(RULES[n % len(RULES)], n // len(RULES) + 1, per_rule, rng)
        record.history = record.history * history
        docs.append(record.stored())
    return docs


def validated(docs: list[Doc]) -> list[Lifecycle]:
    return [Lifecycle.model_validate(doc) for doc in docs]


def seed(store: BlobStateStore, kind: str, docs: list[tuple[str, Doc]]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pair: store.put(kind, *pair), docs))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far (Linux `/proc`, in clock ticks of 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_ms(ways: dict[str, Callable[[], object]], runs: int, server: int) -> dict[str, Figure]:
    """Median milliseconds of each way over `runs` rounds, after a warm-up round: wall time, this
    process's CPU time (every thread) and the CPU time of the `server` process. Every round calls
    each way once, in turn, so that a slower spell of the machine weighs on all of them alike."""
    spans: dict[str, list[Figure]] = {name: [] for name in ways}
    for round_ in range(runs + 1):
        for name, call in ways.items():
            started, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(server)
            call()
            if round_:
                spans[name].append(((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000,
                                    (cpu_seconds(server) - server_cpu) * 1000))
    return {name: tuple(statistics.median(figure[n] for figure in figures) for n in range(3))  # type: ignore[misc]
            for name, figures in spans.items()}


def with_workers(store: BlobStateStore, workers: int, kind: str) -> Callable[[], list[tuple[str, Doc]]]:
    def listing() -> list[tuple[str, Doc]]:
        store.listing_workers = workers
        return store.items(kind)
    return listing


def measure(store: BlobStateStore, kind: str, workers: list[int], runs: int, server: int) -> dict[str, Figure]:
    """Milliseconds of each way of listing `kind`; every way must find the same records."""
    expected = sorted(sequential_items(store, kind))
    for count in workers:
        assert with_workers(store, count, kind)() == expected, f"{count} workers listed other records"
    ways: dict[str, Callable[[], object]] = {"sequential": lambda: sequential_items(store, kind)}
    ways.update({f"items(), {count} workers": with_workers(store, count, kind) for count in workers})
    ways["names + metadata only"] = lambda: names_only(store, kind)
    figures = median_ms(ways, runs, server)
    return figures


def measured_rows(connection: str, server: int, counts: list[int], workers: list[int], runs: int, history: int,
                  label: str) -> list[tuple[str, float, dict[str, Figure]]]:
    """The figures of N lifecycles for each N of `counts`, then of the endpoints' rollouts, each in a new container."""
    service = blob_service(Settings.from_environ({"AzureWebJobsStorage": connection}))
    rows = []
    for count in counts:
        store = BlobStateStore(service, f"bench-{uuid.uuid4().hex[:8]}")
        docs = lifecycles(count, history)
        seed(store, "lifecycle", [(f"{doc['model']}:{doc['version']}", doc) for doc in docs])
        size = statistics.mean(len(json.dumps(doc, sort_keys=True)) for doc in docs) / 1024
        figures = measure(store, "lifecycle", workers, runs, server)
        listed = [doc for _, doc in store.items("lifecycle")]
        figures.update(median_ms({"  + validate (ops route)": functools.partial(validated, listed)}, runs, server))
        rows.append((f"{count} lifecycles{label}", size, figures))
    store = BlobStateStore(service, f"bench-{uuid.uuid4().hex[:8]}")
    rollouts = [(key, doc) for kind, key, doc in seeded_rollouts(ENDPOINTS, random.Random(16)) if kind == "rollout"]
    seed(store, "rollout", rollouts)
    size = statistics.mean(len(json.dumps(doc, sort_keys=True)) for _, doc in rollouts) / 1024
    rows.append((f"{ENDPOINTS} rollouts (tick_all){label}", size, measure(store, "rollout", workers, runs, server)))
    return rows


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default="20,200,1000", help="lifecycle counts, comma-separated")
    parser.add_argument("--workers", default="1,4,8,10,16", help="listing_workers to try, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--history", type=int, default=2, help="each record's history written this many times")
    parser.add_argument("--latency-ms", type=float, default=5, help="added to each request in the second pass")
    parser.add_argument("--latency-records", default="200", help="lifecycle counts of the second pass")
    args = parser.parse_args()
    workers = numbers(args.workers)
    with running_azurite() as azurite:
        assert azurite.process is not None, "this Azurite was started here"
        server = azurite.process.pid
        rows = measured_rows(azurite.connection_string, server, numbers(args.records), workers, args.runs,
                             args.history, "")
        if args.latency_ms:
            with delayed(azurite, args.latency_ms) as connection:
                rows += measured_rows(connection, server, numbers(args.latency_records), workers, args.runs,
                                      args.history, f", {args.latency_ms:g} ms a request")
    report(rows, args.runs)


def report(rows: list[tuple[str, float, dict[str, Figure]]], runs: int) -> None:
    print(f"median of {runs} listings after a warm-up; Azurite on loopback; {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for title, size, figures in rows:
        baseline = figures["sequential"][0]
        print(f"\n{title}, {size:.1f} KiB a record on average")
        print(f"  {'way':<28}{'ms':>9}{'vs sequential':>15}{'client CPU ms':>15}{'Azurite CPU ms':>16}")
        for way, (spent, cpu, server_cpu) in figures.items():
            ratio = "" if way.startswith("  +") else f"{baseline / spent:.2f}x"
            print(f"  {way:<28}{spent:9.1f}{ratio:>15}{cpu:15.0f}{server_cpu:16.0f}")


if __name__ == "__main__":
    main()
