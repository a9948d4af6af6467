"""The control room's cost at size: page load and one refresh with 200 model versions and 20 endpoints.

    python benchmarks/controlroom.py [--versions 200] [--endpoints 20] [--refreshes 5] [--every 2]
                                     [--views rollouts,models,audit,setaside] [--profile] [--keep DIR] [--json]

A state container on a really started Azurite is seeded with what months of work leave there, as
`shared.domain.records` types it: 200 lifecycles over four rules (stage histories, test metrics, gate
tables from `shared.domain.decisions.judge`), 20 endpoints' rollouts (plans, analyses with their metrics,
three finished rollouts each in the archive), an audit trail of 2,000 entries and events set aside.
The local stack (the local host in its own process, the local Azure ML service, which the rollout
route asks for each endpoint's live traffic) serves the app against it, with its timers off so
that nothing but the page reads the state. Headless chromium (Debian's, through Selenium, as
`tests/e2e/test_controlroom_browser.py` drives it) signs in to the control room as erin (MLOps.Admin)
on the local Entra ID stand-in's form, and the script prints:

- page load, signed in (MSAL.js's tokens in the tab's cache): from navigation to the first full render
  (every view drawn, `data-refreshes=1`);
- one refresh on each view: its time (first request to redraw), API requests and bytes, and the
  browser's main-thread time (all of it, and layout with style) per refresh, from the Performance domain;
- server time per route: each route alone, sequentially (median of 5), and as the page sees it
  (time to first byte while the refresh's requests run together);
- where a refresh went: until the list (the view's first route) answered, the requests still running after it,
  and reading and drawing after the last answer; the slowest refresh's requests, each with its start and duration;
- with `--profile`, Chrome's CPU profiler over each view's refreshes: the functions of the most self time;
- the JS heap (after a garbage collection) after the first render and after each view's refreshes.

`--keep DIR` keeps Azurite's data in DIR: the first run seeds it, the next runs of the same size measure the same
fleet again without seeding it (10,000 versions take about 4 minutes to seed), for instance with another revision
of the code. The seeded endpoints are not on the local Azure ML service: the endpoint route's one platform call
finds none and the record answers alone (in Azure, that route makes two calls to ARM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import running_azurite
from devhost.stack import Stack, local_stack
from shared.adapters.storage.clients import table_service
from shared.adapters.storage.index import TableIndex, table_name
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Stores
from shared.domain.decisions import judge
from shared.domain.policy import Gate, HealthGates, MirrorPhase, RolloutPlan
from shared.domain.records import (
    AuditEntry,
    HistoryAction,
    Lifecycle,
    Phase,
    Rollout,
    RolloutEntry,
    RolloutState,
    Split,
    Stage,
    StageEntry,
)

RULES = ("credit-risk", "churn", "fraud", "demand-forecast")
GATES = [Gate(metric="accuracy", min=0.8), Gate(metric="latency_p95_ms", max=50), Gate(metric="auc", max_drop=0.01)]
START = datetime.now(UTC) - timedelta(days=60)
VIEWS = ("rollouts", "models", "audit", "setaside")
PAST_ROLLOUTS = 3
FIRST_ENDPOINT = f"{RULES[1]}-01"  # seeded_rollouts names endpoint n after RULES[n % 4]
AUDIT_ENTRIES = 2000
ADMIN = "erin"  # the local Entra ID stand-in's MLOps.Admin: reads everything, and the page draws every action


# Seeding ------------------------------------------------------------------------------------


def stage_path(version: int, newest: int, rng: random.Random) -> list[Stage]:
    """The stages one version went through: the newest is testing, the one before waits for review
    or rolls out, one is live, and the older ones ended as versions do."""
    passed = [Stage.TESTING, Stage.PASSED, Stage.PROMOTED, Stage.ROLLING_OUT]
    if version == newest:
        return [Stage.TESTING]
    if version == newest - 1:
        return [Stage.TESTING, Stage.PASSED, Stage.AWAITING_REVIEW] if rng.random() < 0.5 else passed
    if version == newest - 2:
        return [*passed, Stage.LIVE]
    ending = rng.choices(["failed", "rolled_back", "retired"], weights=[2, 1, 5])[0]
    if ending == "failed":
        return [Stage.TESTING, Stage.FAILED]
    if ending == "rolled_back":
        return [*passed, Stage.ROLLED_BACK]
    return [*passed, Stage.LIVE, Stage.SUPERSEDED, Stage.RETIRED]


def lifecycle(rule: str, version: int, newest: int, rng: random.Random) -> Lifecycle:
    stages = stage_path(version, newest, rng)
    begun = START + timedelta(hours=6 * version, minutes=rng.randrange(60))
    metrics = {"accuracy": round(rng.uniform(0.7, 0.95), 4), "auc": round(rng.uniform(0.8, 0.97), 4),
               "latency_p95_ms": round(rng.uniform(5, 60), 2)}
    verdict = judge(GATES, metrics, {"auc": 0.9})
    history = [StageEntry(stage=stage, time=begun + timedelta(minutes=7 * n), cause=f"event:{rng.getrandbits(64):x}",
                          reason=REASONS[stage].format(rule=rule, version=version))
               for n, stage in enumerate(stages)]
    tested = len(stages) > 1
    job = f"test-{rule}-v{version}"
    return Lifecycle(
        model=rule, version=str(version), workspace="dev", uri=f"azureml:{rule}:{version}", rule=rule,
        stage=stages[-1], test_job=job, history=history, metrics=dict(metrics) if tested else {},
        gates=verdict.table() if tested else None,
        test_job_url=f"https://ml.azure.com/runs/{job}?wsid=/subscriptions/0/resourceGroups/rg/workspaces/dev"
        if tested else None,
        promoted_to={"registry:shared": f"azureml://registries/shared/models/{rule}/versions/{version}"}
        if Stage.PROMOTED in stages else {},
        rollout=f"{rule}/{rule}-v{version}" if Stage.ROLLING_OUT in stages else None,
        deployment=f"{rule}-v{version}" if Stage.ROLLING_OUT in stages else None,
        registered_by="data.scientist@contoso.com",
    )


REASONS = {
    Stage.TESTING: "test job test-{rule}-v{version} (model-test) submitted",
    Stage.PASSED: "every gate passed",
    Stage.FAILED: "failed gates: accuracy 0.712 < 0.8",
    Stage.AWAITING_REVIEW: "waits for review by a holder of the app role MLOps.Approver",
    Stage.PROMOTED: "promoted to registry:shared",
    Stage.ROLLING_OUT: "rollout {rule}/{rule}-v{version} started on prod",
    Stage.LIVE: "serving 100% of {rule}",
    Stage.ROLLED_BACK: "rolled back: error rate 0.061 > 0.02 at step 10%",
    Stage.SUPERSEDED: "superseded by a newer champion",
    Stage.RETIRED: "deployment deleted after the grace period",
    Stage.REJECTED: "rejected", Stage.EXPIRED: "expired",
}


def rollout(index: int, model: str, version: int, state: RolloutState, started: datetime,
            rng: random.Random) -> Rollout:
    """One endpoint's rollout with the history the engine writes: a mirror phase, then steps, each
    analysed several times (bake 60 s) before it passes, and how it ended."""
    endpoint = f"{model}-{index:02d}"
    deployment, previous = f"{model}-v{version}", f"{model}-v{version - 1}"
    plan = RolloutPlan(workspace="prod", endpoint=endpoint, mirror=MirrorPhase(percent=20), steps=[10, 50, 100],
                       gates=HealthGates(max_error_rate=0.02, max_latency_p95_ms=250, min_requests=100),
                       manual_gates=[100])
    at = started
    history = [RolloutEntry(time=at, action=HistoryAction.START, actor="system",
                            reason=f"deployment {deployment} created")]
    phases = [("mirror", 20), ("step", 10), ("step", 50), ("step", 100)]
    reached = {RolloutState.SUCCEEDED: 4, RolloutState.ROLLED_BACK: 2, RolloutState.PROGRESSING: 2,
               RolloutState.PAUSED: 2, RolloutState.AWAITING_APPROVAL: 3}[state]
    for phase, share in phases[:reached]:
        for n in range(6):
            at += timedelta(seconds=60)
            requests_seen = rng.randrange(80, 600)
            errors = rng.randrange(0, 3)
            verdict = "inconclusive" if requests_seen < 100 else "pass"
            history.append(RolloutEntry(
                time=at, action=HistoryAction(f"analysis:{verdict}"), actor="system",
                reason=f"{errors} errors in {requests_seen} requests, p95 {rng.uniform(20, 90):.0f} ms",
                metrics={"requests": requests_seen, "errors": errors, "error_rate": errors / requests_seen,
                         "latency_p95_ms": rng.uniform(20, 90), "latency_p99_ms": rng.uniform(90, 200)}))
            if n == 5 and (phase, share) != phases[reached - 1]:
                history.append(RolloutEntry(
                    time=at, action=HistoryAction.STEP, actor="system", reason=f"next step: {share}%",
                    traffic={previous: 100 - share, deployment: share} if phase == "step" else None,
                    mirror={deployment: share} if phase == "mirror" else None))
    ended = state in (RolloutState.SUCCEEDED, RolloutState.ROLLED_BACK)
    reason = {RolloutState.SUCCEEDED: "100% after every analysis passed",
              RolloutState.ROLLED_BACK: "error rate 0.061 > 0.02 (7 errors in 115 requests)",
              RolloutState.PAUSED: "checking the dashboards", RolloutState.AWAITING_APPROVAL: "step 100% waits",
              RolloutState.PROGRESSING: "baking"}[state]
    last = {RolloutState.SUCCEEDED: HistoryAction.SUCCEEDED, RolloutState.ROLLED_BACK: HistoryAction.ROLLED_BACK,
            RolloutState.PAUSED: HistoryAction.PAUSE, RolloutState.AWAITING_APPROVAL: HistoryAction.AWAITING_APPROVAL,
            RolloutState.PROGRESSING: HistoryAction.RESUME}[state]
    history.append(RolloutEntry(time=at, action=last, actor="ops@contoso.com" if not ended else "system",
                                reason=reason))
    traffic = {deployment: 100} if state is RolloutState.SUCCEEDED else (
        {previous: 100} if state is RolloutState.ROLLED_BACK else {previous: 50, deployment: 50})
    return Rollout(
        id=f"{endpoint}/{deployment}", key=f"prod.{endpoint}", workspace="prod", endpoint=endpoint,
        deployment=deployment, rule=model, model=model, version=str(version), plan=plan,
        baseline=Split(traffic={previous: 100}), state=state, phase=Phase.STEP,
        step=min(reached - 2, 2), target=Split(traffic=traffic), step_started=at, started=started,
        finished=at if ended else None, retired=state is RolloutState.SUCCEEDED,
        rollback_reason=reason if state is RolloutState.ROLLED_BACK else "", history=history,
    )


def seeded_rollouts(endpoints: int, rng: random.Random) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, key, record) of each endpoint's current rollout and its archived ones."""
    states = [RolloutState.PROGRESSING, RolloutState.PAUSED, RolloutState.AWAITING_APPROVAL,
              RolloutState.ROLLED_BACK, RolloutState.ROLLED_BACK]
    for index in range(1, endpoints + 1):
        model = RULES[index % len(RULES)]
        state = states[index - 1] if index <= len(states) else RolloutState.SUCCEEDED
        latest = 40 + index
        for past in range(PAST_ROLLOUTS):
            version = latest - PAST_ROLLOUTS + past
            record = rollout(index, model, version, rng.choice([RolloutState.SUCCEEDED, RolloutState.ROLLED_BACK]),
                             START + timedelta(days=10 * past), rng)
            yield "rollout-archive", f"{record.key}.{record.deployment}.{record.started:%Y%m%dT%H%M%S%f}", \
                record.stored()
        current = rollout(index, model, latest, state, datetime.now(UTC) - timedelta(hours=2), rng)
        yield "rollout", current.key, current.stored()


def seed(state: BlobStateStore, versions: int, endpoints: int) -> dict[str, int]:
    """Write everything into the state container; how many of each were written."""
    rng = random.Random(16)
    per_rule = versions // len(RULES)
    documents: list[tuple[str, str, dict[str, Any]]] = []
    for rule in RULES:
        for version in range(1, per_rule + 1):
            record = lifecycle(rule, version, per_rule, rng)
            documents.append(("lifecycle", record.key, record.stored()))
    documents.extend(seeded_rollouts(endpoints, rng))
    for n in range(10):
        event = {"id": f"ev-{n}", "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                 "subject": f"models/credit-risk:{n}", "data": None}
        documents.append(("rejected", f"rejected-{n}", {"event": event, "reason": "'data' must be a JSON object",
                                                        "received": datetime.now(UTC).isoformat()}))
        documents.append(("ignored", f"ignored-{n}", {"event": {**event, "eventType": "Microsoft.Storage.BlobCreated"},
                                                      "reason": "not a type the app handles",
                                                      "received": datetime.now(UTC).isoformat()}))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda doc: state.put(*doc), documents))
    lines = [AuditEntry(time=datetime.now(UTC) - timedelta(seconds=AUDIT_ENTRIES - n), correlation_id=f"c{n:06d}",
                        subject=f"{RULES[n % 4]}:{n % per_rule + 1}", action=("lifecycle", "rollout", "notify")[n % 3],
                        outcome="promoted", reason="promoted to registry:shared").model_dump_json()
             for n in range(AUDIT_ENTRIES)]
    for chunk in range(0, len(lines), 500):
        state.append_lines(f"audit/{datetime.now(UTC):%Y-%m-%d}.jsonl",
                           "".join(line + "\n" for line in lines[chunk:chunk + 500]).encode())
    counts: dict[str, int] = defaultdict(int)
    for kind, _, _ in documents:
        counts[kind] += 1
    return {**counts, "audit": AUDIT_ENTRIES}


# Measuring ----------------------------------------------------------------------------------

# Runs in the page before its own script: the time each API call starts, and the resource timing buffer
# made large enough for every request of the run.
PROBE = """
window.__calls = [];
performance.setResourceTimingBufferSize(100000);
const original = window.fetch;
window.fetch = function (...args) { window.__calls.push(performance.now()); return original.apply(this, args); };
window.__marks = [];
document.addEventListener("DOMContentLoaded", () => new MutationObserver(() => window.__marks.push(performance.now()))
  .observe(document.body, {attributes: true, attributeFilter: ["data-refreshes"]}));
"""


def browser(stack: Stack, page: str, user: str = ADMIN) -> Any:
    """Headless chromium, `user` signed in to the control room at `page` (the stand-in's certificate accepted
    by its key alone, as the browser test does)."""
    from tests.e2e.test_controlroom_browser import sign_in, start_browser

    driver = start_browser(stack.aml.certificates.cert_file, logs=False)
    sign_in(driver, page, stack.aml.entra, user)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
    driver.execute_cdp_cmd("Performance.enable", {})
    return driver


def wait(what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.005)
    raise SystemExit(f"the control room did not show {what} within {timeout} s")


def metrics(driver: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}


def refreshes(driver: Any) -> int:
    return int(driver.execute_script("return Number(document.body.dataset.refreshes || 0)"))


def route_of(url: str) -> str:
    """The route a request of the page went to, with the endpoint's names as placeholders."""
    path = url.split("/api/", 1)[1].split("?", 1)[0]
    parts = path.split("/")
    if parts[:2] == ["ops", "rollouts"] and len(parts) >= 4:
        return "ops/rollouts/{ws}/{ep}" + ("/history" if len(parts) == 5 else "")
    return path


def api_entries(driver: Any, since: float) -> list[dict[str, Any]]:
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/ops/') "
        "&& !e.name.includes('/controlroom')).map(e => ({name: e.name, start: e.startTime, end: e.responseEnd, "
        "ttfb: e.responseStart - e.requestStart, bytes: e.transferSize, body: e.encodedBodySize}))")
    return [entry for entry in entries if entry["start"] >= since]


def page_load(driver: Any, page: str) -> dict[str, float]:
    started = time.perf_counter()
    driver.get(page)
    wait("the first full render", lambda: refreshes(driver) >= 1)
    wall = time.perf_counter() - started
    navigation = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return {dcl: n.domContentLoadedEventEnd, "
        "load: n.loadEventEnd}")
    entries = api_entries(driver, 0)
    return {"wall_ms": 1000 * wall, "dom_content_loaded_ms": navigation["dcl"], "requests": len(entries),
            "bytes": sum(e["bytes"] for e in entries), "heap_mb": retained_heap_mb(driver)}


def marks(driver: Any) -> list[float]:
    """When each refresh of the page ended (its redraw), on the page's clock."""
    return list(driver.execute_script("return window.__marks"))


def retained_heap_mb(driver: Any) -> float:
    """The JS heap after a garbage collection: what the page keeps, not what it has not freed yet."""
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    return metrics(driver)["JSHeapUsedSize"] / 2**20


def refresh_cost(driver: Any, view: str, count: int, profile: bool = False) -> dict[str, Any]:
    """`count` refreshes on one view: per refresh, its time, requests, bytes and main-thread time. The page
    is looked at once a second only, so that the browser's main thread does little else than the page's work."""
    driver.execute_script(f"window.location.hash = '#{view}'")
    first = len(marks(driver))
    wait(f"a refresh on {view}", lambda: len(marks(driver)) >= first + 2)  # one that began on this view
    begin = len(marks(driver))
    since = driver.execute_script("return performance.now()")
    if profile:
        driver.execute_cdp_cmd("Profiler.enable", {})
        driver.execute_cdp_cmd("Profiler.setSamplingInterval", {"interval": 100})
        driver.execute_cdp_cmd("Profiler.start", {})
    before = metrics(driver)
    deadline = time.monotonic() + 120
    while len(marks(driver)) < begin + count and time.monotonic() < deadline:
        time.sleep(1)
    after = metrics(driver)
    spent = self_times(driver.execute_cdp_cmd("Profiler.stop", {})["profile"]) if profile else []
    ended = marks(driver)[begin:begin + count]
    if len(ended) < count:
        raise SystemExit(f"the control room refreshed {len(ended)} times on {view} in 120 s, not {count}")
    entries = [e for e in api_entries(driver, since) if e["start"] <= ended[-1]]
    refreshed = len(marks(driver)) - begin  # the main-thread figures cover every refresh since `before`
    # One cycle: from its first API call to the redraw that ends it.
    calls = [c for c in driver.execute_script("return window.__calls") if since <= c <= ended[-1]]
    cycles, phases, seen, previous = [], [], [], since
    for mark in ended:
        started = [c for c in calls if previous <= c <= mark]
        if started:
            cycles.append(mark - started[0])
            within = [e for e in entries if previous <= e["start"] <= mark]
            phases.append(phases_of(started[0], within, mark))
            seen.append(requests_of(started[0], within))
        previous = mark
    slowest = max(range(len(cycles)), key=cycles.__getitem__) if cycles else None
    per_route: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        per_route[route_of(entry["name"])].append(entry["ttfb"])
    return {
        "view": view, "cycle_ms": statistics.median(cycles) if cycles else 0.0,
        "cycle_p95_ms": sorted(cycles)[min(len(cycles) - 1, round(0.95 * (len(cycles) - 1)))] if cycles else 0.0,
        "requests": len(entries) / count, "bytes": sum(e["bytes"] for e in entries) / count,
        "main_thread_ms": 1000 * (after["TaskDuration"] - before["TaskDuration"]) / refreshed,
        "layout_style_ms": 1000 * (after["LayoutDuration"] + after["RecalcStyleDuration"]
                                   - before["LayoutDuration"] - before["RecalcStyleDuration"]) / refreshed,
        "ttfb_ms": {route: statistics.median(values) for route, values in sorted(per_route.items())},
        "phases_ms": {name: statistics.median(p[name] for p in phases) for name in PHASES} if phases else {},
        "phases_slowest_ms": phases[slowest] if slowest is not None else {},
        "slowest_requests": seen[slowest] if slowest is not None else [],
        "heap_mb": retained_heap_mb(driver),
        "profile": [(name, ms / refreshed) for name, ms in spent],
    }


def self_times(profile: dict[str, Any], top: int = 15) -> list[tuple[str, float]]:
    """The functions the page's main thread spent most time in (self time, ms), from a CDP CPU profile."""
    interval = {node["id"]: 0 for node in profile["nodes"]}
    deltas = profile.get("timeDeltas", [])
    for sample, delta in zip(profile.get("samples", []), [*deltas[1:], 0], strict=True):
        interval[sample] += delta  # a sample lasts until the next one
    spent: dict[str, float] = defaultdict(float)
    for node in profile["nodes"]:
        frame = node["callFrame"]
        where = frame["url"].rsplit("/", 1)[-1]
        name = f"{frame['functionName'] or '(anonymous)'} {where}:{frame['lineNumber'] + 1}" if where \
            else frame["functionName"] or "(program)"
        spent[name] += interval[node["id"]] / 1000
    spent.pop("(idle)", None)
    return sorted(spent.items(), key=lambda item: -item[1])[:top]


PHASES = ("first", "rest", "draw")


def phases_of(begun: float, entries: list[dict[str, Any]], mark: float) -> dict[str, float]:
    """Where one refresh went: its first request (the list), the requests that followed it until the last answer
    ended, and what came after, until the redraw (reading the answers' JSON and drawing)."""
    if not entries:
        return {"first": 0.0, "rest": 0.0, "draw": mark - begun}
    listing = [entry for entry in entries if "{ep}" not in route_of(entry["name"])] or entries
    first = min(listing, key=lambda entry: entry["start"])["end"]
    last = max(entry["end"] for entry in entries)
    return {"first": first - begun, "rest": max(0.0, last - first), "draw": mark - last}


def requests_of(begun: float, entries: list[dict[str, Any]]) -> list[str]:
    """One refresh's requests: route, when each started after the refresh began, how long it took (ms)."""
    return [f"{route_of(entry['name'])} +{entry['start'] - begun:.0f} {entry['end'] - entry['start']:.0f}"
            for entry in sorted(entries, key=lambda entry: entry["start"])]


def server_times(stack: Stack, runs: int = 5) -> dict[str, tuple[float, int]]:
    """Each route the page reads, alone and in turn: median milliseconds and answer bytes."""
    routes = {
        "ops/rollouts": "ops/rollouts",
        "ops/rollouts/{ws}/{ep}": f"ops/rollouts/prod/{FIRST_ENDPOINT}",
        "ops/rollouts/{ws}/{ep}/history": f"ops/rollouts/prod/{FIRST_ENDPOINT}/history?limit=20",  # as the page
        "ops/lifecycles": "ops/lifecycles",
        "ops/audit": "ops/audit?limit=1000",
        "ops/events/setaside": "ops/events/setaside?kind=rejected&limit=100",
    }
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {stack.token(ADMIN)}"
    found = {}
    for name, path in routes.items():
        times, size = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            answer = session.get(f"{stack.host.url}/api/{path}", timeout=120)
            times.append(1000 * (time.perf_counter() - started))
            answer.raise_for_status()
            size = len(answer.content)
        found[name] = (statistics.median(times), size)
    return found


def seeded(stack: Stack, args: argparse.Namespace) -> None:
    """Seed the state (and index it as the first start does), unless `--keep`'s folder holds it already."""
    size = {"versions": args.versions, "endpoints": args.endpoints}
    marker = args.keep / "seeded.json" if args.keep else None
    if marker and marker.exists():
        if json.loads(marker.read_text()) != size:
            raise SystemExit(f"{args.keep} holds a fleet of {marker.read_text()}, not {size}: give another folder")
        print(f"the fleet seeded before in {args.keep}: {size}")
        return
    started = time.perf_counter()
    counts = seed(stack.state, args.versions, args.endpoints)
    # Written as blobs, in the layout before the index: index them as the first start does (docs/state.md).
    stores = Stores(stack.state, TableIndex(table_service(stack.settings), table_name(stack.settings.state_container)))
    stores.index.ready()  # type: ignore[union-attr]  # the table (the host may have marked it complete)
    stores.migrate()
    print(f"seeded in {time.perf_counter() - started:.1f} s: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if marker:
        marker.write_text(json.dumps(size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--refreshes", type=int, default=5, help="refreshes measured on each view")
    parser.add_argument("--every", type=float, default=2, help="the page's refresh interval, seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--views", default=",".join(VIEWS), help="the views measured, comma-separated")
    parser.add_argument("--profile", action="store_true", help="Chrome's CPU profiler over each view's refreshes")
    parser.add_argument("--keep", type=Path, help="Azurite's data in this folder: seeded on the first run, used "
                                                   "again as it is by the next runs of the same size")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-controlroom-"))
    quiet = {"MLOPS_RESYNC_SCHEDULE": "0 0 0 1 1 *", "MLOPS_ROLLOUT_SCHEDULE": "0 0 0 1 1 *"}
    with contextlib.ExitStack() as running:
        azurite = None
        if args.keep:
            azurite = running.enter_context(running_azurite(location=str(args.keep / "azurite")))
            quiet["MLOPS_STATE_CONTAINER"] = "state-controlroom"
        stack = running.enter_context(local_stack(workdir, quiet, fast=False, azurite=azurite))
        seeded(stack, args)
        server = server_times(stack)
        page = f"{stack.host.url}/api/ops/controlroom?every={args.every}"
        driver = browser(stack, page)
        try:
            load = page_load(driver, page)
            costs = [refresh_cost(driver, view, args.refreshes, args.profile) for view in args.views.split(",")]
        finally:
            driver.quit()
    report(load, costs, server, args)


def report(load: dict[str, float], costs: list[dict[str, Any]], server: dict[str, tuple[float, int]],
           args: argparse.Namespace) -> None:
    print(f"\nControl room with {args.versions} versions and {args.endpoints} endpoints "
          f"(headless chromium, local host on loopback, refresh every {args.every} s)")
    print(f"page load to first full render: {load['wall_ms']:.0f} ms "
          f"(DOMContentLoaded {load['dom_content_loaded_ms']:.0f} ms), {load['requests']} API requests, "
          f"{load['bytes'] / 1024:.0f} KiB, JS heap {load['heap_mb']:.1f} MB")
    print(f"\n{'view':<10} {'refresh':>9} {'p95':>7} {'requests':>9} {'KiB':>7} {'main thr':>8} {'layout':>8} "
          f"{'heap MB':>8}  vs load")
    for cost in costs:
        print(f"{cost['view']:<10} {cost['cycle_ms']:>7.0f}ms {cost['cycle_p95_ms']:>5.0f}ms {cost['requests']:>9.1f} "
              f"{cost['bytes'] / 1024:>7.0f}"
              f" {cost['main_thread_ms']:>6.0f}ms {cost['layout_style_ms']:>6.0f}ms {cost['heap_mb']:>8.1f}"
              f"  {cost['cycle_ms'] / load['wall_ms']:.2f}x time, {cost['bytes'] / max(load['bytes'], 1):.2f}x bytes")
    print("\nserver time per route: alone (median of 5) | time to first byte within a refresh")
    seen: dict[str, list[float]] = defaultdict(list)
    for cost in costs:
        for route, ttfb in cost["ttfb_ms"].items():
            seen[route].append(ttfb)
    for route, (alone, size) in server.items():
        within = f"{statistics.median(seen[route]):.0f} ms" if seen.get(route) else "-"
        print(f"  {route:<34} {alone:>6.0f} ms  {size / 1024:>7.0f} KiB | {within}")
    print("\nwhere a refresh went, median (and the slowest refresh): the first request (the list), the requests "
          "after it, reading and drawing")
    for cost in costs:
        median, slowest = cost["phases_ms"], cost["phases_slowest_ms"]
        print(f"  {cost['view']:<10} " + ", ".join(f"{name} {median.get(name, 0):.0f} ({slowest.get(name, 0):.0f}) ms"
                                              for name in PHASES))
        print(f"  {'':<10} the slowest's requests (route +start duration, ms): "
              + ", ".join(cost["slowest_requests"]))
    for cost in costs:
        if cost.get("profile"):
            print(f"\nChrome's profiler on {cost['view']}, self time a refresh (the top functions):")
            for name, spent in cost["profile"]:
                print(f"  {spent:>7.1f} ms  {name}")
    if args.json:
        print(json.dumps({"load": load, "refresh": costs, "server": server}, indent=2))


if __name__ == "__main__":
    main()
