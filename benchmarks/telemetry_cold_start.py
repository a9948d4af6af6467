"""Cold start of the function app with and without Application Insights, each in a fresh interpreter.

    python benchmarks/telemetry_cold_start.py [--runs 5] [--root PATH]

A cold start here is what a new worker does before its first invocation's own work: import
`function_app`, then the first telemetry call (`shared.adapters.telemetry.enabled()`), which with
`APPLICATIONINSIGHTS_CONNECTION_STRING` set configures the Azure Monitor distro and without it
returns at once. Each run is a new process; medians are printed with the range, then the ratio
of the two totals. With the setting, the connection string points at a closed loopback port and
the exporter's calls to Microsoft's endpoints (statsbeat, control plane) are off: nothing leaves
the machine, and nothing is exported during the measurement either way.

`--root` measures another checkout (for example the tree before telemetry, from `git archive`):
there, a missing `shared.adapters.telemetry` counts as "no telemetry call".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}
# Port 9 (discard) on loopback: nothing listens, so an export attempt would fail fast and locally.
CONNECTION_STRING = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/"

PROBE = """
import importlib, json, sys, time

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 // 1024

before = rss_kib()
start = time.perf_counter()
importlib.import_module("function_app")
imported = time.perf_counter()
try:
    from shared.adapters import telemetry
except ImportError:
    telemetry = None
on = telemetry.enabled() if telemetry else False
done = time.perf_counter()
otel = sum(1 for name in sys.modules if name.startswith(("opentelemetry", "azure.monitor")))
print(json.dumps({"import": imported - start, "configure": done - imported, "total": done - start, "on": on,
                  "rss_kib": rss_kib() - before, "modules": len(sys.modules), "otel_modules": otel}))
"""


def measure(root: Path, with_setting: bool) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("APPLICATIONINSIGHTS", "OTEL_"))}
    if with_setting:
        env.update(OFFLINE, APPLICATIONINSIGHTS_CONNECTION_STRING=CONNECTION_STRING)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"the cold start failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def spread(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per case (default 5)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.runs} fresh processes per case, medians (min-max), {args.root}")
    print(f"{'case':<22}{'import ms':>16}{'configure ms':>16}{'total ms':>16}{'RSS MiB':>18}{'modules':>9}"
          f"{'otel':>6}")
    totals = {}
    for label, with_setting in (("without the setting", False), ("with the setting", True)):
        runs = [measure(args.root, with_setting) for _ in range(args.runs)]
        totals[label] = statistics.median(run["total"] for run in runs)
        print(
            f"{label:<22}"
            f"{spread([run['import'] * 1000 for run in runs]):>16}"
            f"{spread([run['configure'] * 1000 for run in runs]):>16}"
            f"{spread([run['total'] * 1000 for run in runs]):>16}"
            f"{spread([run['rss_kib'] / 1024 for run in runs], 1):>18}"
            f"{int(statistics.median(run['modules'] for run in runs)):>9}"
            f"{int(statistics.median(run['otel_modules'] for run in runs)):>6}"
        )
    ratio = totals["with the setting"] / totals["without the setting"]
    print(f"cold start with Application Insights / without: {ratio:.2f}x")


if __name__ == "__main__":
    main()
