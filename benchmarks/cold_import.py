"""Cold import cost of the function app against `azure.ai.ml` alone, each in a fresh interpreter.

    python benchmarks/cold_import.py [--runs 5]

For each module, `--runs` new Python processes import it once and report the import's
wall time and how much the process's resident memory grew. Medians are printed, with
the range. The function app must stay far below `azure.ai.ml`: that gap is what lazy
imports buy at every cold start (issue 23's goal: at most 0.3x). The modules take turns
within each round, so each round's ratio compares imports made under the same load (the
machine is shared): the ratio's median and range are printed last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("function_app", "shared.adapters.azureml", "azure.ai.ml")

PROBE = """
import importlib, json, sys, time

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 // 1024

before = rss_kib()
start = time.perf_counter()
importlib.import_module(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_kib": rss_kib() - before, "modules": len(sys.modules)}))
"""


def measure(module: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"importing {module} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per module (default 5)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.runs} fresh processes per module, medians (min-max)")
    print(f"{'module':<26}{'import ms':>24}{'RSS growth MiB':>24}{'modules':>10}")
    rounds = [{module: measure(module) for module in MODULES} for _ in range(args.runs)]
    for module in MODULES:
        runs = [measured[module] for measured in rounds]
        ms = [run["seconds"] * 1000 for run in runs]
        mib = [run["rss_kib"] / 1024 for run in runs]
        print(
            f"{module:<26}"
            f"{f'{statistics.median(ms):.0f} ({min(ms):.0f}-{max(ms):.0f})':>24}"
            f"{f'{statistics.median(mib):.1f} ({min(mib):.1f}-{max(mib):.1f})':>24}"
            f"{int(statistics.median(run['modules'] for run in runs)):>10}"
        )
    ratios = [measured["function_app"]["seconds"] / measured["azure.ai.ml"]["seconds"] for measured in rounds]
    print(
        f"function_app / azure.ai.ml, per round: {statistics.median(ratios):.2f}"
        f" ({min(ratios):.2f}-{max(ratios):.2f}); goal <= 0.30"
    )


if __name__ == "__main__":
    main()
