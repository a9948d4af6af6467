"""Cold import cost of the function app against `azure.ai.ml` alone, each in a fresh interpreter.

    python benchmarks/cold_import.py [--runs 5] [--compare PATH]

For each row, `--runs` new Python processes import its modules once and report the import's
wall time, its CPU time (the process's own, which leaves out its waits for a core on a busy machine) and
how much the process's resident memory grew. Medians are printed, with the range.
The function app must stay far below `azure.ai.ml`: that gap is what lazy imports buy at every
cold start (issue 23's goal: at most 0.3x). The rows take turns within each round (in an order
rotated each round), so each round's ratio to `azure.ai.ml` compares imports made under the same
load (the machine is shared): each row's ratio is the median and range of those per-round ratios.

The Python worker imports `azure.functions` and the bindings' base extension itself before it
indexes the app: `function_app, worker's modules loaded` is what the app adds to that.
The function app's triggers import the app on their first call; `function_app + first calls` adds
those imports (the event intake, the queue worker, the admin API), to show where that cost went.

The floor is what indexing the app needs whatever the app does: `azure.functions` (which imports
werkzeug) and the blob SDK-type binding extension (which imports azure.storage.blob and
azure.identity), whose `BlobClient` type the blob trigger's parameter must carry at indexing.

`--compare PATH` adds a row for the function app of another checkout (for example the tree before
a change, from `git archive`), imported in fresh processes with that tree, not this one, on sys.path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "azure.ai.ml"
FLOOR = ("azure.functions", "azurefunctions.extensions.bindings.blob")
# What the Python worker imports itself before it indexes the app (`load_binding_registry` in
# https://github.com/Azure/azure-functions-python-worker/blob/dev/azure_functions_worker/bindings/meta.py).
WORKER = ("azure.functions", "azurefunctions.extensions.base")
# What the event and admin functions import on their first call: the cost a cold start no longer pays up front.
FIRST_CALLS = (
    "shared.bootstrap", "shared.reactor.intake", "shared.reactor.worker", "shared.ops.routes", "shared.ops.http",
)

PROBE = """
import importlib, json, sys, time

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 // 1024

for name in filter(None, sys.argv[2].split(",")):  # loaded before the clock starts, as the worker does
    importlib.import_module(name)
before = rss_kib()
start, cpu = time.perf_counter(), time.process_time()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_kib": rss_kib() - before, "modules": len(sys.modules)}))
"""


@dataclass(frozen=True)
class Row:
    """What one row imports, from which tree (the tree is the child's working directory: sys.path[0])."""

    label: str
    modules: tuple[str, ...]
    root: Path = ROOT
    preloaded: tuple[str, ...] = ()  # imported before the clock starts


def rows(compare: Path | None) -> list[Row]:
    """The rows measured, `azure.ai.ml` last (every ratio's denominator)."""
    before = [Row(f"function_app ({compare.name})", ("function_app",), compare)] if compare else []
    return [
        *before,
        Row("function_app", ("function_app",)),
        Row("function_app + first calls", ("function_app", *FIRST_CALLS)),
        Row("function_app, worker's modules loaded", ("function_app",), preloaded=WORKER),
        Row("floor: azure.functions", FLOOR[:1]),
        Row("floor: + blob binding", FLOOR),
        Row("shared.adapters.azureml", ("shared.adapters.azureml",)),
        Row(BASELINE, (BASELINE,)),
    ]


def measure(row: Row) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(row.modules), ",".join(row.preloaded)],
        cwd=row.root, capture_output=True, text=True, timeout=300, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"importing {row.label} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_rounds(measured: list[Row], runs: int) -> list[dict[str, dict[str, float]]]:
    """`runs` rounds, each importing every row once; the order rotates so no row always goes first."""
    rounds = []
    for number in range(runs):
        turn = number % len(measured)
        rounds.append({row.label: measure(row) for row in measured[turn:] + measured[:turn]})
    return rounds


def spread(values: list[float], digits: int) -> str:
    """`median (min-max)`."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per row (default 5)")
    parser.add_argument("--compare", type=Path, help="another checkout whose function_app gets a row too")
    args = parser.parse_args()
    compare = args.compare.resolve() if args.compare else None
    if compare and not (compare / "function_app.py").is_file():
        raise SystemExit(f"--compare: {compare} has no function_app.py")
    measured = rows(compare)
    print(f"python {sys.version.split()[0]}, {args.runs} fresh processes per row, medians (min-max)")
    print(f"{'row':<40}{'import ms':>20}{'ratio':>18}{'CPU ms':>20}{'CPU ratio':>18}{'RSS MiB':>8}{'modules':>8}")
    rounds = measure_rounds(measured, args.runs)
    for row in measured:
        runs = [each[row.label] for each in rounds]
        print(
            f"{row.label:<40}"
            f"{spread([run['seconds'] * 1000 for run in runs], 0):>20}"
            f"{spread([each[row.label]['seconds'] / each[BASELINE]['seconds'] for each in rounds], 2):>18}"
            f"{spread([run['cpu'] * 1000 for run in runs], 0):>20}"
            f"{spread([each[row.label]['cpu'] / each[BASELINE]['cpu'] for each in rounds], 2):>18}"
            f"{statistics.median(run['rss_kib'] / 1024 for run in runs):>8.1f}"
            f"{int(statistics.median(run['modules'] for run in runs)):>8}"
        )
    print("ratio: to azure.ai.ml's in the same round; CPU: the process's own CPU time, which leaves out its waits")
    print("for a core on a busy machine. goal: function_app <= 0.30")


if __name__ == "__main__":
    main()
