"""Shadow predictions compared, on the local stack: both deployments collect their predictions with the local
Azure ML service's data collector, the app reads them from the workspace's blob storage and pairs them by
request id, and a shadow that classifies 10 % of requests differently never takes live traffic (an agreeing
shadow passing is unit-tested: tests/unit/test_shadow.py)."""

from __future__ import annotations

from pathlib import Path

from devhost.azurite import Azurite
from devhost.stack import TrafficGenerator, local_stack
from devhost.waiting import wait_until
from localaml import samples
from localaml.endpoints import online
from tests.e2e.conftest import write_policy
from tests.e2e.test_rollout import MODEL, first_version_live, rollout, stage

GATE = "      mirror: {percent: 50, bake_seconds: 3, predictions: {max_disagreement: 0.05, min_rows: 100}}\n"


def test_a_shadow_that_disagrees_on_10_percent_of_requests_never_takes_live_traffic(
    azurite: Azurite, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, bake=2, min_requests=10)
    policy.write_text(policy.read_text().replace("      steps: [10, 50, 100]\n", GATE + "      steps: [10, 50, 100]\n"))
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        first_version_live(stack)
        prod = stack.aml.service.workspace_id("prod")
        # v2 is v1's model, told to answer the other class on 10 % of rows (a local-only fault, set before
        # its deployment exists): whatever it disagrees on is the fault's doing.
        stack.aml.control("POST", f"/localaml{prod}/onlineEndpoints/{MODEL}/deployments/credit-risk-v2/faults",
                          {"flipRate": 0.1})
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=40):
            stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
            wait_until(lambda: rollout(stack).get("deployment") == "credit-risk-v2"
                       and rollout(stack).get("state") == "rolled_back", timeout=120)
            disagreeing = rollout(stack)
        wait_until(lambda: stage(stack, "2") == "rolled_back", timeout=30)
        assert stack.platform.get_endpoint("prod", MODEL).traffic == {"credit-risk-v1": 100}
        told = [n.body["data"] for n in stack.receiver.received if n.path == "/ops"]
        answered_by_v2 = [s for s in online(stack.aml.service).scored if s.deployment == "credit-risk-v2"]
        assert answered_by_v2 and all(s.mirrored for s in answered_by_v2), "no caller ever got v2's answer"

    history = disagreeing["history"]
    assert "step" not in [entry["action"] for entry in history], "never took live traffic"
    failed = next(entry for entry in history if entry["action"] == "analysis:fail")
    assert "differently" in failed["reason"]
    figures = failed["metrics"]
    assert figures["shadow_paired"] == 1.0 and figures["shadow_compared"] >= 100
    assert 0.05 < figures["shadow_disagreement_low"] <= figures["shadow_disagreement"] <= 0.2
    assert disagreeing["baseline"]["traffic"] == {"credit-risk-v1": 100}
    rolled_back = next(n for n in told if n["kind"] == "rollout.rolled_back" and "v2" in n["title"])
    assert "differently" in rolled_back["summary"]
