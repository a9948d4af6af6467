"""What verifying a person's token adds to a request, measured in one run against the local Entra stand-in.

- warm: the app's verifier with the tenant's keys cached (every request after the first): µs per token;
- cold key cache: a new verifier (a new worker process): OpenID discovery + JWKS over HTTPS + the check;
- cold import: importing the verifier (PyJWT, cryptography) in a fresh interpreter, against importing the
  function app, in the same run.
The cold figure is set against one HTTPS round trip to the stand-in, measured in the same run.

    python -m benchmarks.tokens [--warm 2000] [--cold 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from devhost.entra import running_local_entra
from localaml.tls import make_certificates
from localentra.directory import API_CLIENT_ID, TENANT
from shared.adapters.identity import EntraTokens

ROOT = Path(__file__).resolve().parent.parent


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {statistics.median(ordered) * 1e3:.3f} ms, p95 {p95 * 1e3:.3f} ms"


def import_seconds(module: str, runs: int = 5) -> float:
    """The median time a fresh interpreter takes to import `module` (after the interpreter's own start)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout) for _ in range(runs)]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=int, default=2000)
    parser.add_argument("--cold", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_local_entra(make_certificates(Path(folder))) as entra:
        os.environ["REQUESTS_CA_BUNDLE"] = str(entra.ca_file)
        token = entra.token_for("dave")
        verifier = EntraTokens(entra.base_url, TENANT, API_CLIENT_ID)
        verifier.verify(token)
        warm = []
        for _ in range(args.warm):
            started = time.perf_counter()
            verifier.verify(token)
            warm.append(time.perf_counter() - started)
        cold = []
        for _ in range(args.cold):
            started = time.perf_counter()
            EntraTokens(entra.base_url, TENANT, API_CLIENT_ID).verify(token)
            cold.append(time.perf_counter() - started)
        session = requests.Session()
        session.verify = str(entra.ca_file)
        discovery = f"{entra.authority}/v2.0/.well-known/openid-configuration"
        round_trips = []
        for _ in range(args.cold):
            started = time.perf_counter()
            session.get(discovery, timeout=10).raise_for_status()
            round_trips.append(time.perf_counter() - started)
    identity_import = import_seconds("shared.adapters.identity")
    app_import = import_seconds("function_app")
    print(f"warm verify ({args.warm} tokens):        {percentiles(warm)}")
    print(f"cold key cache ({args.cold} verifiers):   {percentiles(cold)} "
          f"(discovery + JWKS; one HTTPS round trip to the stand-in: {percentiles(round_trips)})")
    print(f"cold / warm (p50):               {statistics.median(cold) / statistics.median(warm):.0f}x")
    print(f"cold import of the verifier:     {identity_import * 1e3:.0f} ms; function_app: {app_import * 1e3:.0f} ms "
          f"(ratio {identity_import / app_import:.2f}; the verifier is imported on the first person's request)")


if __name__ == "__main__":
    main()
