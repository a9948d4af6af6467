"""The canary judged against its champion on the local stack: real traffic, real per-minute Azure Monitor
metrics from the local Azure ML service, the app's adapter and engine (docs/judging.md).

Azure Monitor's grain is a minute, so these tests take minutes: each analysis reads every minute since
the step began, and the comparison decides once the minutes show it. The deployments are made slower on
purpose with the local service's `latencyMs` control (local-only): 100 ms and 160 ms added (with the
scoring's own few milliseconds, about 1.5x), both under the absolute limit of 400 ms, so only the
comparison can tell them apart.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import wait_until
from tests.e2e.conftest import write_policy
from tests.e2e.test_rollout import MODEL, actions, canary_deployment, first_version_live, rollout

COMPARE = """      gates: {{max_error_rate: 0.05, max_latency_p95_ms: {limit}, min_requests: 10}}
      compare:
        alpha: 0.05
        metrics: [{{metric: RequestLatency_P95, tolerance: 0.1, weight: 1, critical: true}}]
      on_no_evidence: hold
"""


def compared_policy(folder: Path, limit: float = 250, bake: float = 20, inconclusive_limit: int = 1000) -> Path:
    """The e2e policy with the canary compared with its champion on p95 latency, holding for lack of evidence."""
    path = write_policy(folder, bake=bake, min_requests=10, inconclusive_limit=inconclusive_limit)
    text = path.read_text()
    text = text.replace("      gates: {max_error_rate: 0.05, min_requests: 10}\n", COMPARE.format(limit=limit))
    path.write_text(text.replace("      on_no_evidence: roll_back\n", ""))
    return path


def slow(stack: Stack, deployment: str, latency_ms: float) -> None:
    stack.aml.set_deployment_fault("prod", MODEL, deployment, latency_ms=latency_ms)


def latest(stack: Stack) -> dict[str, Any]:
    return rollout(stack).get("analysis") or {}


def test_a_canary_half_again_as_slow_as_its_champion_yet_under_the_limits_rolls_back(
    azurite: Azurite, tmp_path: Path
) -> None:
    policy = compared_policy(tmp_path, limit=400)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        slow(stack, "credit-risk-v1", 100)
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=15):
            canary_deployment(stack, "2")
            slow(stack, "credit-risk-v2", 160)
            wait_until(lambda: rollout(stack).get("state") == "rolled_back", timeout=480, interval=2,
                       what="the slower canary rolled back")

        record = rollout(stack)
        failed = next(e for e in record["history"] if e["action"] == "analysis:fail")
        assert "RequestLatency_P95 higher than the champion's" in failed["reason"]
        assert failed["metrics"]["latency_p95_ms"] < 400, "under the absolute limit all along"
        [line] = failed["analysis"]["comparison"]["metrics"]
        assert line["classification"] == "high" and line["ratio_low"] > 1.1
        assert stack.platform.get_endpoint("prod", MODEL).traffic == {"credit-risk-v1": 100}
        told = [n.body["data"] for n in stack.receiver.received if n.path == "/ops"]
        [rolled_back] = [n for n in told if n["kind"] == "rollout.rolled_back"]
        assert rolled_back["table"]["rows"][0][:2] == ["RequestLatency_P95", "high"]


def test_a_spike_on_both_deployments_does_not_roll_back_the_canary(azurite: Azurite, tmp_path: Path) -> None:
    """Both deployments answer 400 ms later for most of the step's first minute: over the absolute limit (300 ms) on
    both, so that minute is the platform's, and the same on both, so the comparison sees no difference."""
    policy = compared_policy(tmp_path, limit=300)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        slow(stack, "credit-risk-v1", 100)
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=15):
            canary_deployment(stack, "2")
            slow(stack, "credit-risk-v2", 100)
            wait_until(lambda: "step" in actions(stack), timeout=60)
            for deployment in ("credit-risk-v1", "credit-risk-v2"):
                slow(stack, deployment, 500)
            started = wait_until(lambda: rollout(stack).get("step_started"), timeout=30, what="the step's start")
            began = started if isinstance(started, datetime) else datetime.fromisoformat(str(started))
            # The local monitor's minutes start when the step did: the spike fills most of the first one (its p95
            # is the spike's) and ends 10 s before the second, so that no slow request answered late under load is
            # counted in the second minute, where a few requests make one of them the canary's p95.
            time.sleep(max(0.0, (began + timedelta(seconds=50) - datetime.now(UTC)).total_seconds()))
            for deployment in ("credit-risk-v1", "credit-risk-v2"):
                slow(stack, deployment, 100)
            wait_until(lambda: "analysis:pass" in actions(stack) or rollout(stack)["state"] != "progressing",
                       timeout=480, interval=2, what="the first step decided")

        record = rollout(stack)
        failures = [(e["reason"], e.get("metrics")) for e in record["history"] if e["action"] == "analysis:fail"]
        assert not failures and record["state"] in ("progressing", "succeeded"), (record["state"], failures)
        passed = next(e for e in record["history"] if e["action"] == "analysis:pass")
        assert "left out of the hard limits: credit-risk-v1 broke them too" in passed["reason"]
        assert passed["analysis"]["comparison"]["metrics"][0]["classification"] == "pass"


def test_a_low_traffic_rollout_says_how_much_more_evidence_it_needs_and_holds(
    azurite: Azurite, tmp_path: Path
) -> None:
    policy = compared_policy(tmp_path, bake=1, inconclusive_limit=2)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        canary_deployment(stack, "2")
        wait_until(lambda: actions(stack).count("analysis:inconclusive") >= 3, timeout=90)

        record = rollout(stack)
        assert record["state"] == "progressing", "no rollback for lack of evidence: the policy holds"
        closeness = latest(stack)["closeness"]
        assert closeness["counter"] == "inconclusive" and closeness["count"] >= 3 and closeness["limit"] == 2
        assert closeness["needs_requests"] and "more requests" in closeness["text"]
        assert closeness["text"].startswith(f"inconclusive {closeness['count']} of 2: holds")
        told = [n.body["data"] for n in stack.receiver.received if n.path == "/ops"]
        holding = [n for n in told if n["kind"] == "rollout.holding"]
        assert len(holding) == 1 and holding[0]["severity"] == "warning"
        assert any(fact["name"] == "rollback" and "more requests" in fact["value"] for fact in holding[0]["facts"])
