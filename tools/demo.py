"""The main job: the whole event-to-rollout chain on the local Azure ML service, with a timeline.

The app talks to Azure ML only through its azure-ai-ml adapter; here that adapter talks to
the local Azure ML service (`localaml`) over loopback TLS, which runs the repo's pipelines
for real, serves the endpoint and publishes Azure ML's events to the app's webhook.

1. v1 of `credit-risk` is registered in dev by a data scientist: tested, judged, and held
   for review (the demo's rule requires a person's sign-off). People sign in to the local
   Entra ID stand-in: its registrant, alice, is refused; bob, holding the approvers' app role,
   approves it through the admin API with his own token. It is
   promoted to the registry and prod, and deployed to the empty prod endpoint (100% at once:
   nothing to compare). Each later version that passes its gates is approved the same way.
2. Client traffic starts. v2 (good) and v3 (no skill) are registered together: v3 fails
   its gates and is rejected with its gate table; v2 shadows 20% of traffic, then takes
   10%, 50%, 100% of it, each step judged on its live error rate and latency.
3. v4 is registered and its deployment is made to fail 20% of requests: the rollout
   is rolled back automatically at its first step, and ops are told why.
4. The model monitor's data-drift signal breaches its threshold (a failed monitoring run
   tagged `azureml_modelmonitor_threshold_breached`): retraining starts, ops hear of it;
   the retrained model is registered as v5 and goes through the same chain to serving.
Notifications arrive, signed, at a local webhook receiver standing in for ops' channels.
The policy is the app's own (`policy/policy.yaml`) with the review step added to its rule.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

from devhost.localaml import register_model_version
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import WaitTimeout, wait_until
from localaml import samples
from shared.adapters.storage.stores import Stores
from shared.domain.records import Lifecycle

MODEL, ENDPOINT = "credit-risk", "credit-risk"
POLICY = Path(__file__).resolve().parents[1] / "policy" / "policy.yaml"
APPROVER_ROLE = "MLOps.Approver"
REVIEW = {"approvers": APPROVER_ROLE, "four_eyes": True, "expires_after": "2d"}
SCIENTIST, APPROVER = "alice", "bob"  # people of the local Entra stand-in: a data scientist, an approver

T = TypeVar("T")


class Timeline:
    """Prints audit entries and received notifications as they appear."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.started = stack, time.monotonic()
        self._audit_seen = self._notes_seen = 0

    def say(self, text: str) -> None:
        print(f"\n{self.clock()} == {text}", flush=True)

    def poll(self) -> None:
        entries = self.stack.state.read_audit()
        for entry in entries[self._audit_seen:]:
            if entry.action != "intake" or entry.outcome != "queued":
                print(f"{self.clock()}    {entry.action:<10} {entry.outcome:<15} {entry.subject[:40]:<40} "
                      f"{entry.reason[:87]}", flush=True)
        self._audit_seen = len(entries)
        notes = self.stack.receiver.received
        for note in notes[self._notes_seen:]:
            data = note.body.get("data", {}) if isinstance(note.body, dict) else {}
            signed = "signature ok" if note.signature_valid else "SIGNATURE INVALID"
            print(f"{self.clock()}    >> ops: [{data.get('kind')}] {data.get('title')} ({signed})", flush=True)
        self._notes_seen = len(notes)

    def wait(self, what: str, probe: Callable[[], T], timeout: float = 120) -> T:
        def polled() -> T:
            self.poll()
            return probe()

        try:
            return wait_until(polled, timeout=timeout, interval=0.5, what=what)
        except WaitTimeout as timeout_error:
            raise SystemExit(f"demo: {timeout_error}; see the host log") from None

    def clock(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"


def demo_policy(workdir: Path) -> Path:
    """The app's policy with a review step in each rule: a version that passes its gates waits for a person."""
    policy = yaml.safe_load(POLICY.read_text())
    for rule in policy["rules"]:
        rule["review"] = REVIEW
    path = workdir / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path



def review(stack: Stack, version: str, who: str) -> tuple[int, dict]:
    """`who`, signed in to the local Entra stand-in, approves the version through the admin API with their own
    token (`opsctl review approve` does the same); status and body."""
    response = stack.admin("POST", f"ops/lifecycles/{MODEL}/{version}/review", as_user=who,
                           json={"decision": "approve", "reason": "gate table checked"})
    return response.status_code, response.json()


def approve(timeline: Timeline, stack: Stack, version: str, show: bool = False) -> None:
    """Wait until the version waits for review, then approve it as the approver (the audit trail in the timeline
    shows who); with `show`, print what waits, what ops were told, that its registrant may not approve it, and
    who did."""
    timeline.wait(f"v{version} to wait for review", lambda: stage(stack, version) == "awaiting_review")
    if show:
        record = lifecycle(stack, version)
        told = timeline.wait("ops to be told", lambda: next((n.body["data"] for n in stack.receiver.received
                                                            if n.path == "/ops" and n.body["data"]["kind"]
                                                            == "model.awaiting_review"), None)) or {}
        print(f"\n    v{version} passed its gates and waits for review (registered by "
              f"{record.registered_by if record else None});"
              f" ops were told:\n      {told['summary']}")
        status, body = review(stack, version, SCIENTIST)
        print(f"    {SCIENTIST}, its registrant, signed in, approves it: refused, {status} {body.get('error', '')}")
    status, body = review(stack, version, APPROVER)
    if status != 200:
        raise SystemExit(f"demo: approving v{version} failed: {status} {body}")
    if show:
        decision = body.get("review") or {}
        print(f"    {decision.get('by')}, signed in, holding the app role {APPROVER_ROLE}, approves it "
              f"(via {decision.get('via')}): {status}, now {body.get('stage')}; later versions are approved the same "
              "way", flush=True)


def lifecycle(stack: Stack, version: str) -> Lifecycle | None:
    return Stores(stack.state).lifecycles.get(f"{MODEL}:{version}")


def stage(stack: Stack, version: str) -> str | None:
    record = lifecycle(stack, version)
    return record.stage.value if record else None


def print_gate_table(stack: Stack, version: str) -> None:
    record = lifecycle(stack, version)
    table = record.gates if record else None
    print(f"\n    gate table of {MODEL} v{version} ({record.stage.value if record else None}):")
    for row in [table.header, *table.rows] if table else []:
        print("      " + "  ".join(f"{cell:<20}" for cell in row))


def print_summary(stack: Stack, traffic: TrafficGenerator) -> None:
    state = Stores(stack.state)
    print("\n== Lifecycles")
    for record in sorted(state.lifecycles.list(), key=lambda r: int(r.version)):
        path = " -> ".join(entry.stage.value for entry in record.history)
        print(f"    {record.model} v{record.version:<3} {record.stage.value:<12} {path}")
    endpoint = stack.platform.get_endpoint("prod", ENDPOINT)
    print(f"\n== Endpoint prod/{ENDPOINT}: traffic {endpoint.traffic}, mirror {endpoint.mirror_traffic}")
    print(f"   client requests answered by deployment: {traffic.answers} (errors seen by clients: {traffic.errors})")
    for rollout in [*state.archived_rollouts.list(), *state.rollouts.list()]:
        print(f"\n== Rollout {rollout.id}: {rollout.state.value}")
        for entry in rollout.history:
            print(f"    {entry.time:%H:%M:%S} {entry.actor[:8]:<8} {entry.action.value:<22} {entry.reason[:80]}")
    print(f"\n== {len(stack.receiver.received)} notifications received by the ops webhook, "
          f"all signed: {all(n.signature_valid for n in stack.receiver.received)}")


def run(workdir: Path) -> int:
    from importlib.metadata import version

    started = time.monotonic()
    print(f"Azure ML: the local Azure ML service, through azure-ai-ml {version('azure-ai-ml')} (starting...)")
    policy = demo_policy(workdir)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(policy)}) as stack:
        timeline = Timeline(stack)
        scientist = stack.aml.client_as("dev", SCIENTIST)

        def register(onnx: bytes) -> None:
            register_model_version(scientist, "dev", MODEL, onnx, {"team": "risk"})

        print(f"Azure ML: {stack.aml.url} (workspaces dev and prod, registry {stack.aml.registry}), "
              f"up in {time.monotonic() - started:.1f} s")
        print(f"Local stack: host {stack.host.url}, ops webhook {stack.receiver.url} "
              f"(host log: {workdir / 'host.log'})")
        print(f"Policy: {POLICY.relative_to(POLICY.parents[1])} with review by the app role {APPROVER_ROLE}, "
              f"four eyes ({policy})")
        timeline.say(f"1. credit-risk v1 registered in dev by {SCIENTIST} (the first model: no champion yet)")
        register(samples.good_model(seed=1))
        approve(timeline, stack, "1", show=True)
        timeline.wait("v1 to go live", lambda: stage(stack, "1") == "live")

        with TrafficGenerator(stack.aml, "prod", ENDPOINT, per_second=40) as traffic:
            timeline.say("2. client traffic on; v2 (good) and v3 (no skill) registered together")
            register(samples.good_model(seed=3))
            register(samples.bad_model(seed=2))
            timeline.wait("v3 to be rejected", lambda: stage(stack, "3") == "failed")
            print_gate_table(stack, "3")
            approve(timeline, stack, "2")
            timeline.wait("v2 to go live", lambda: stage(stack, "2") == "live", timeout=180)

            timeline.say("3. v4 registered; its deployment will fail 20% of requests")
            register(samples.good_model(seed=4))
            approve(timeline, stack, "4")
            timeline.wait("v4's deployment", lambda: stage(stack, "4") == "rolling_out")
            stack.aml.set_deployment_fault("prod", ENDPOINT, "credit-risk-v4", error_rate=0.2)
            timeline.wait("v4 to be rolled back", lambda: stage(stack, "4") == "rolled_back", timeout=180)

            timeline.say("4. model monitor credit-risk-monitor: data drift on f0 breaches its threshold (0.8 > 0.3)")
            stack.aml.run_model_monitor("dev", "credit-risk-monitor", {"data_drift": [
                {"feature": "f0", "metric": "JensenShannonDistance", "value": 0.8, "threshold": 0.3},
                {"feature": "f1", "metric": "JensenShannonDistance", "value": 0.05, "threshold": 0.3},
            ]})
            approve(timeline, stack, "5")
            timeline.wait("the retrained model (v5) to go live", lambda: stage(stack, "5") == "live", timeout=180)
            timeline.poll()
        print_summary(stack, traffic)
        # v1 and v2 served, then each was replaced: superseded, and retired once its deployment was deleted.
        replaced = ("superseded", "retired")
        expected = {"1": replaced, "2": replaced, "3": ("failed",), "4": ("rolled_back",), "5": ("live",)}
        live = all(stage(stack, version) in ends for version, ends in expected.items())
        reviewed = all((record := lifecycle(stack, version)) is not None and record.review is not None
                       and record.review.by == f"{APPROVER}@contoso.test" for version in ("1", "2", "4", "5"))
        live = live and reviewed
        verdict = "every step as expected" if live else "UNEXPECTED END STATE (see above)"
        print(f"\nDemo finished in {time.monotonic() - started:.0f} s: {verdict}.")
        return 0 if live else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="where Azurite data and the host log go")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aml-reactor-demo-"))
    return run(workdir)


if __name__ == "__main__":
    sys.exit(main())
