"""Progressive rollout on the local Azure ML service: canary steps, automatic rollback, inconclusive
steps, and a restart of the app mid-rollout."""

from __future__ import annotations

from pathlib import Path

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import WaitTimeout, wait_until
from localaml import samples
from tests.e2e.conftest import write_policy

MODEL = "credit-risk"


def rollout(stack: Stack) -> dict:
    return stack.state.get("rollout", "prod.credit-risk") or {}


def actions(stack: Stack) -> list[str]:
    return [entry["action"] for entry in rollout(stack).get("history", [])]


def stage(stack: Stack, version: str) -> str | None:
    """The version's lifecycle stage: it takes its rollout's outcome just after the rollout ends."""
    return (stack.state.get("lifecycle", f"{MODEL}:{version}") or {}).get("stage")


def first_version_live(stack: Stack) -> None:
    stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
    wait_until(lambda: stage(stack, "1") == "live", timeout=60)


def canary_deployment(stack: Stack, version: str) -> None:
    """Register a version and wait until its deployment exists on the endpoint."""
    stack.aml.register_model("dev", MODEL, samples.good_model(seed=int(version) + 2), {})
    wait_until(lambda: any(d.name == f"credit-risk-v{version}"
                           for d in stack.platform.get_endpoint("prod", MODEL).deployments), timeout=60)


def test_a_canary_failing_20_percent_of_requests_is_rolled_back_within_one_step(
    azurite: Azurite, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, bake=3, min_requests=20)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=60):
            # Set before the deployment exists: set after, its first requests (many on a loaded machine) were
            # clean, and the first analysis could pass.
            stack.aml.set_deployment_fault("prod", MODEL, "credit-risk-v2", error_rate=0.2)
            canary_deployment(stack, "2")
            wait_until(lambda: rollout(stack).get("state") == "rolled_back", timeout=60)
        wait_until(lambda: stage(stack, "2") == "rolled_back", timeout=30)

        record = rollout(stack)
        steps = [e for e in record["history"] if e["action"] == "step"]
        assert len(steps) == 1, f"rolled back at the first step, never given more traffic: {record['history']}"
        failed = next(e for e in record["history"] if e["action"] == "analysis:fail")
        assert "error" in failed["reason"] and failed["metrics"]["error_rate"] > 0.05
        endpoint = stack.platform.get_endpoint("prod", MODEL)
        assert endpoint.traffic == {"credit-risk-v1": 100}, "the split from before the rollout is back"
        assert "credit-risk-v2" in {d.name for d in endpoint.deployments}, "kept for diagnosis"
        assert stack.platform.get_model("dev", MODEL, "2").tags["mlops.stage"] == "rolled_back"
        told = [n.body["data"] for n in stack.receiver.received if n.path == "/ops"]
        rolled_back = [n for n in told if n["kind"] == "rollout.rolled_back"]
        assert len(rolled_back) == 1 and "error" in rolled_back[0]["summary"]


def test_a_step_with_too_little_traffic_waits_instead_of_passing(azurite: Azurite, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, bake=1, min_requests=50)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        canary_deployment(stack, "2")
        wait_until(lambda: actions(stack).count("analysis:inconclusive") >= 3, timeout=60)

        record = rollout(stack)
        assert record["state"] == "progressing"
        assert [e["reason"] for e in record["history"] if e["action"] == "step"] == [
            "10% of traffic to credit-risk-v2"
        ]
        assert "analysis:pass" not in actions(stack)
        assert stack.platform.get_endpoint("prod", MODEL).traffic == {"credit-risk-v1": 90, "credit-risk-v2": 10}


def test_a_rollout_resumes_after_the_app_is_killed_and_restarted(azurite: Azurite, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, bake=2, min_requests=10)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=40):
            canary_deployment(stack, "2")
            wait_until(lambda: "step" in actions(stack), timeout=30)
            stack.host.stop(kill=True)
            at_kill = rollout(stack)
            stack.host.start()
            try:  # three bakes and analyses after a cold start: on a loaded CI machine that took over 90 s
                wait_until(lambda: rollout(stack).get("state") == "succeeded", timeout=180)
            except WaitTimeout as timeout:
                raise AssertionError(f"{timeout}; last moves: {rollout(stack).get('history', [])[-4:]}") from None
        wait_until(lambda: stage(stack, "2") == "live", timeout=30)

        assert at_kill["state"] == "progressing"
        record = rollout(stack)
        steps = [e["reason"] for e in record["history"] if e["action"] == "step"]
        assert steps == ["10% of traffic to credit-risk-v2", "50% of traffic to credit-risk-v2",
                         "100% of traffic to credit-risk-v2"]
        assert stack.platform.get_endpoint("prod", MODEL).traffic["credit-risk-v2"] == 100
        assert stack.state.get("champion", "credit-risk")["version"] == "2"


def test_a_rollout_that_starts_within_the_previous_ones_grace_period_completes(
    azurite: Azurite, tmp_path: Path
) -> None:
    """Regression: the new rollout's baseline named a deployment retired as it started."""
    policy = write_policy(tmp_path, bake=1, min_requests=10, retire=600)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=40):
            canary_deployment(stack, "2")
            wait_until(lambda: rollout(stack).get("deployment") == "credit-risk-v2"
                       and rollout(stack).get("state") == "succeeded", timeout=90)
            canary_deployment(stack, "3")
            wait_until(lambda: rollout(stack).get("deployment") == "credit-risk-v3"
                       and rollout(stack).get("state") in ("succeeded", "rolled_back", "failed"), timeout=90)

        record = rollout(stack)
        assert record["state"] == "succeeded", record["history"][-3:]
        assert record["baseline"]["traffic"] == {"credit-risk-v2": 100}
        endpoint = stack.platform.get_endpoint("prod", MODEL)
        assert "credit-risk-v1" not in {d.name for d in endpoint.deployments}, "retired when v3's rollout began"
        assert endpoint.traffic["credit-risk-v3"] == 100
