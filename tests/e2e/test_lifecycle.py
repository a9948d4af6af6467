"""The model lifecycle end to end: real HTTP, Azurite, the local Azure ML service and the local host."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import requests

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import wait_until
from localaml import jobs, samples
from tests.conftest import FIXTURES
from tests.e2e.conftest import write_policy

MODEL = "credit-risk"
TEST_DATA = "azureml://datastores/workspaceblobstore/paths/test-data/"


def stage(stack: Stack, version: str) -> str | None:
    record = stack.state.get("lifecycle", f"{MODEL}:{version}")
    return record["stage"] if record else None


def ops_notifications(stack: Stack) -> list[dict]:
    return [n.body["data"] for n in stack.receiver.received if n.path == "/ops"]


def test_the_chain_from_registration_to_serving_with_rejection_and_retraining(azurite: Azurite, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, bake=1, min_requests=10)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
        wait_until(lambda: stage(stack, "1") == "live", timeout=60)
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=40):
            stack.aml.register_model("dev", MODEL, samples.good_model(seed=3), {})
            stack.aml.register_model("dev", MODEL, samples.bad_model(seed=2), {})
            wait_until(lambda: stage(stack, "3") == "failed", timeout=60)
            wait_until(lambda: stage(stack, "2") == "live", timeout=120)

        rejected = stack.state.get("lifecycle", f"{MODEL}:3")
        assert [row[0] for row in rejected["gates"]["rows"] if row[-1] == "FAIL"] == ["accuracy", "auc"]
        assert stack.platform.get_model("dev", MODEL, "3").tags["mlops.stage"] == "rejected"
        assert stack.platform.get_model("registry:shared", MODEL, "2").uri.startswith("azureml://registries/shared/")
        endpoint = stack.platform.get_endpoint("prod", MODEL)
        assert endpoint.traffic["credit-risk-v2"] == 100
        assert {d.model_uri for d in endpoint.deployments} >= {
            "azureml://registries/shared/models/credit-risk/versions/2"
        }
        rollout = stack.state.get("rollout", "prod.credit-risk")
        steps = [entry["reason"] for entry in rollout["history"] if entry["action"] == "step"]
        assert steps == ["10% of traffic to credit-risk-v2", "50% of traffic to credit-risk-v2",
                         "100% of traffic to credit-risk-v2"]

        # A v1 dataset monitor below its threshold is only recorded; a v2 monitor's breach retrains.
        stack.aml.report_dataset_drift("dev", "credit-risk-monitor", 0.1)
        stack.aml.run_model_monitor("dev", "credit-risk-monitor", {"data_drift": [
            {"feature": "f0", "metric": "JensenShannonDistance", "value": 0.5, "threshold": 0.3}]})
        wait_until(lambda: any(n["kind"] == "retraining.started" for n in ops_notifications(stack)), timeout=30)
        kinds = Counter(n["kind"] for n in ops_notifications(stack))
        assert kinds["model.rejected"] == 1 and kinds["retraining.started"] == 1
        table = next(n for n in ops_notifications(stack) if n["kind"] == "model.rejected")["table"]
        assert table["header"][0] == "metric" and len(table["rows"]) == 2


def deliver(stack: Stack, body: list[dict]) -> None:
    response = requests.post(stack.host.eventgrid_url, json=body, headers={"aeg-event-type": "Notification"},
                             timeout=30)
    assert response.status_code == 202


def captured(stack: Stack, event_type: str) -> list[dict]:
    return [n.body for n in stack.receiver.received
            if n.path == "/aml-events" and n.body[0]["eventType"].endswith(event_type)]


def test_duplicated_reordered_and_dropped_events_end_in_the_same_state(azurite: Azurite, tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite, capture_events=True) as stack:
        stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
        registered = wait_until(lambda: captured(stack, "ModelRegistered"), timeout=30)[0]
        # The test job's RunCompleted arrives first, twice; then ModelRegistered, twice.
        stack.platform.submit_job("dev", "test-credit-risk-v1", "model-test",
                                  {"model": f"azureml:{MODEL}:1", "test_data": TEST_DATA},
                                  {"mlops.purpose": "test", "mlops.model": MODEL, "mlops.version": "1",
                                   "mlops.rule": "credit-risk"})
        completed = wait_until(lambda: captured(stack, "RunCompleted"), timeout=60)[0]
        deliver(stack, completed)
        deliver(stack, completed)
        deliver(stack, registered)
        deliver(stack, registered)
        wait_until(lambda: stage(stack, "1") == "live", timeout=60)

        # v2: its RunCompleted is dropped; only the resync timer can see the job finish.
        stack.aml.register_model("dev", MODEL, samples.good_model(seed=3), {})
        second = wait_until(lambda: [e for e in captured(stack, "ModelRegistered") if e[0]["subject"].endswith(":2")],
                            timeout=60)
        deliver(stack, second[0])
        wait_until(lambda: stage(stack, "2") not in (None, "testing"), timeout=60)
        wait_until(lambda: stage(stack, "2") == "rolling_out", timeout=60)

        audit = stack.state.read_audit()
        assert [e.outcome for e in audit if e.action == "intake"].count("duplicate") == 2
        assert [e.subject for e in audit if e.action == "test"] == ["credit-risk:1", "credit-risk:2"]
        promoted = [e for e in audit if e.action == "lifecycle" and e.outcome == "promoted"]
        assert [e.subject for e in promoted] == ["credit-risk:1", "credit-risk:2"]
        v2_passed = next(e for e in audit if e.action == "lifecycle" and e.outcome == "passed"
                         and e.subject == "credit-risk:2")
        assert v2_passed.correlation_id == "resync"
        sent = Counter(n["id"] for n in ops_notifications(stack))
        assert sent and max(sent.values()) == 1, f"one notification per decision: {sent}"
        deployments = stack.platform.get_endpoint("prod", MODEL).deployments
        assert sorted(d.name for d in deployments) == ["credit-risk-v1", "credit-risk-v2"]


def test_a_platform_call_failing_with_503_twice_is_retried(azurite: Azurite, tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        stack.aml.service.fail("GET", rf"/models/{MODEL}/versions/1$", 503, times=2)
        stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
        wait_until(lambda: stage(stack, "1") not in (None, "testing"), timeout=60)
        errors = [e for e in stack.state.read_audit() if e.outcome == "error"]
        assert errors == [], "the retries happened inside the call, not by failing the work item"


def test_a_policy_file_with_an_error_is_refused_naming_the_field(azurite: Azurite, tmp_path: Path) -> None:
    policy = tmp_path / "broken.yaml"
    policy.write_text("rules: [{name: credit-risk, models: {name: 'credit-risk*'}, test: {pipelin: x}}]")
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite) as stack:
        stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
        dead = wait_until(lambda: stack.state.list("deadletter"), timeout=60)
        assert "rules[0] (credit-risk).test.pipeline: Field required" in dead[0]["reason"]
        assert json.loads(dead[0]["message"])["event"]["subject"] == "models/credit-risk:1"


def test_unmatched_models_are_ignored_and_failed_jobs_and_deployments_reach_ops(
    azurite: Azurite, tmp_path: Path
) -> None:
    with local_stack(tmp_path, azurite=azurite) as stack:
        stack.aml.register_model("dev", "churn", samples.BROKEN_MODEL, {})
        stack.platform.submit_job("dev", "nightly-eval-1", "model-test",
                                  {"model": "azureml:churn:1", "test_data": TEST_DATA}, {})
        failed = wait_until(lambda: [n for n in ops_notifications(stack) if n["kind"] == "job.failed"], timeout=60)
        facts = {fact["name"]: fact["value"] for fact in failed[0]["facts"]}
        assert facts["run id"] == "nightly-eval-1" and facts["status"] == "failed"
        # Why, as Azure ML keeps it (the run's error and its step's std_log.txt), and the local service's own job
        # page, where Azure ML studio cannot show this job.
        assert "does not load in ONNX Runtime" in (jobs.wait(stack.aml.service, "dev", "nightly-eval-1").error or "")
        assert "does not load in ONNX Runtime" in failed[0]["summary"]
        assert "The end of its log:\n$ " in failed[0]["summary"]
        assert failed[0]["link"] == f"{stack.aml.service.base_url}localaml/jobs/dev/nightly-eval-1"

        deployed = json.loads((FIXTURES / "aml-events/docs_eventgrid_schema/model_deployed.json").read_text())
        deployed[0]["topic"] = stack.aml.service.workspace_id("prod")
        deliver(stack, deployed)
        told = wait_until(lambda: [n for n in ops_notifications(stack) if n["kind"] == "model.deployed"], timeout=30)
        assert told[0]["title"].endswith("deployed to my-sklearn-service")

        ignored = [e for e in stack.state.read_audit() if e.outcome == "ignored"]
        assert [e.subject for e in ignored] == ["models/churn:1"]
        assert "no rule matches model churn" in ignored[0].reason
        assert stack.state.get("lifecycle", "churn:1") is None
