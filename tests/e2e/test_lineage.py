"""Lineage and evidence on the registry copy, and the rule's champion history, end to end on the local stack.

A version registered as a training job's output is tested, approved in review and promoted: its copy in
the registry, read back through azure-ai-ml, carries where it came from and the evidence it passed as
tags (the import takes none, so the app sets them after it by a PUT of the registry version:
localaml/registries.py names the sources). When v2 replaces v1, `GET ops/champions/{rule}/history`
says who served from when to when, and why v1 stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import wait_until
from localaml import samples
from localaml.models import register_version

pytestmark = pytest.mark.e2e

MODEL = "credit-risk"
ROLE = "MLOps.Approver"
BOB = "bob@contoso.test"
POLICY = f"""
rules:
  - name: credit-risk
    models: {{name: "credit-risk*"}}
    test: {{pipeline: model-test, inputs: {{test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}}}
    gates: [{{metric: accuracy, min: 0.8}}]
    review: {{approvers: {ROLE}, expires_after: 7d}}
    promotion: {{path: ["registry:shared"]}}
    rollout:
      workspace: prod
      endpoint: credit-risk
      steps: [50, 100]
      bake_seconds: 1
      gates: {{max_error_rate: 0.05, min_requests: 10}}
      retire_previous_after_seconds: 1
"""


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("lineage")
    (workdir / "policy.yaml").write_text(POLICY)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(workdir / "policy.yaml")}, azurite=azurite) as running:
        yield running


def stage(stack: Stack, version: str) -> str | None:
    record = stack.state.get("lifecycle", f"{MODEL}:{version}")
    return record["stage"] if record else None


def trained(stack: Stack, job: str, seed: int) -> str:
    """A training job's registered output in dev (what the service makes of a job's model output): its version."""
    service = stack.aml.service
    made = register_version(service, service.workspace_id("dev"), MODEL, {"model.onnx": samples.good_model(seed=seed)},
                            job_name=job)
    return str(made["name"])


def approve(stack: Stack, version: str) -> None:
    wait_until(lambda: stage(stack, version) == "awaiting_review", timeout=90)
    answer = stack.admin("POST", f"ops/lifecycles/{MODEL}/{version}/review", as_user="bob",
                         json={"decision": "approve", "reason": "gate table checked"})
    assert answer.status_code == 200, answer.text


def test_the_registry_copy_carries_its_lineage_and_the_champion_history_says_who_served(stack: Stack) -> None:
    first = trained(stack, "train-credit-risk-41", seed=1)
    approve(stack, first)
    wait_until(lambda: stage(stack, first) == "live", timeout=90)

    copy = stack.aml.client("registry:shared").models.get(MODEL, version=first)  # through azure-ai-ml
    tags = dict(copy.tags or {})
    record = stack.state.get("lifecycle", f"{MODEL}:{first}")
    assert record is not None
    assert {key: tags.get(key) for key in ("mlops.source_workspace", "mlops.training_job", "mlops.test_job",
                                           "mlops.approved_by", "mlops.rule")} == {
        "mlops.source_workspace": "dev", "mlops.training_job": "train-credit-risk-41",
        "mlops.test_job": f"test-credit-risk-v{first}", "mlops.approved_by": BOB, "mlops.rule": "credit-risk"}
    assert tags["mlops.gates"].startswith("accuracy=") and tags["mlops.gates"].endswith(">=0.8 pass")
    assert datetime.fromisoformat(tags["mlops.approved_at"]) == datetime.fromisoformat(record["review"]["at"]).replace(
        microsecond=0)
    assert tags["mlops.test_job_url"] == record["test_job_url"]
    source = stack.aml.client("dev").models.get(MODEL, version=first)
    assert "mlops.rule" not in (source.tags or {}), "the lineage is the registry copy's, not the workspace version's"

    with TrafficGenerator(stack.aml, "prod", MODEL, per_second=40):
        second = trained(stack, "train-credit-risk-42", seed=3)
        approve(stack, second)
        wait_until(lambda: stage(stack, second) == "live", timeout=120)
    wait_until(lambda: stage(stack, first) in ("superseded", "retired"), timeout=30)

    answer = stack.admin("GET", f"ops/champions/{MODEL}/history")
    assert answer.status_code == 200, answer.text
    terms = answer.json()["terms"]
    assert [(t["version"], t["ended"]) for t in terms] == [(first, f"replaced by v{second}"), (second, None)]
    assert terms[0]["until"] == terms[1]["since"] and terms[1]["until"] is None
    assert terms[1]["began"] == "rolled out on credit-risk" and terms[1]["deployment"] == f"credit-risk-v{second}"
    registry_copy = stack.aml.client("registry:shared").models.get(MODEL, version=second)
    assert (registry_copy.tags or {})["mlops.training_job"] == "train-credit-risk-42"


def test_the_history_of_a_rule_the_policy_does_not_have_is_a_404_naming_the_rule(stack: Stack) -> None:
    answer = stack.admin("GET", "ops/champions/no-such-rule/history")
    bad = stack.admin("GET", "ops/champions/Not_A_Rule!/history")

    assert answer.status_code == 404 and "no-such-rule" in answer.json()["error"]
    assert bad.status_code == 400 and bad.json().get("field") == "rule"
