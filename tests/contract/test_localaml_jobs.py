"""Jobs that really run in the local Azure ML service: the repo's components registered with the real
azure-ai-ml (`tools.register_assets`), the repo's pipelines submitted through the app's adapter, each
step executed by the job runner against a real Azurite over TLS, metrics read back over MLflow REST.

Sources of the behaviour checked here are named in `localaml/jobs.py` (and `mlflow.py`): REST spec
examples `Job/PipelineJob/createOrUpdate.json` and `CodeVersion/createOrGetStartPendingUpload.json`,
the docs' "Register output as named asset", Azure/MachineLearningNotebooks#906 (missing compute),
and the `JobPropertyImmutable` UserError of a second PUT.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite, running_azurite
from localaml import jobs, samples
from localaml.datastores import workspace_container
from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import JobStatus, PlatformError
from tests.contract.conftest import bearer
from tools.register_assets import register

if TYPE_CHECKING:
    from localaml.tls import Certificates

DEV = LocalAzureML.workspace_id("dev")
ROOT = Path(__file__).resolve().parents[2]
TRAINING_DATA = "azureml://datastores/workspaceblobstore/paths/training-data/"
PREFIX = "Microsoft.MachineLearningServices."


@pytest.fixture(scope="module")
def azurite_tls(certificates: Certificates, service: LocalAzureML) -> Iterator[Azurite]:
    with running_azurite(tls=(str(certificates.cert_file), str(certificates.key_file))) as azurite:
        yield azurite


@pytest.fixture(scope="module")
def registered(azurite_tls: Azurite, certificates: Certificates, service: LocalAzureML) -> dict[str, Any]:
    """What tools.register_assets put in a workspace, kept across the module's tests (as a workspace keeps it)."""
    if "workspaces/jobs" not in service.hooks:  # until the lead lists jobs in localaml.FEATURES
        jobs.install(service)
    service.storage = BlobServiceClient.from_connection_string(
        azurite_tls.connection_string, connection_verify=str(certificates.ca_file)
    )
    return {}


@pytest.fixture
def workspace(registered: dict[str, Any], fake: LocalAzureML, platform: AzureMLPlatform) -> LocalAzureML:
    """dev with the repo's assets, the compute cluster, sample data and two models."""
    if not registered:
        registered["lines"] = register(platform._clients.ml("dev"))
        registered["resources"] = {
            key: value for key, value in fake.resources.items() if "/components/" in key or "/codes/" in key
            or "/environments/" in key
        }
    fake.resources.update(registered["resources"])
    fake.add(f"{DEV}/computes/cpu-cluster", {"computeType": "AmlCompute", "provisioningState": "Succeeded"})
    samples.seed_data(fake, "dev")
    fake.events.published.clear()
    return fake


def add_model(service: LocalAzureML, name: str, version: str, data: bytes) -> None:
    assert service.storage is not None
    container = service.storage.get_container_client(workspace_container("dev"))
    container.upload_blob(f"models/{name}/{version}/model.onnx", data, overwrite=True)
    service.add_model(
        DEV, name, version,
        model_uri=f"azureml://subscriptions/x/resourceGroups/y/workspaces/dev/datastores/workspaceblobstore"
        f"/paths/models/{name}/{version}/",
    )


def test_the_assets_register_with_one_command(workspace: LocalAzureML, registered: dict[str, Any]) -> None:
    assert registered["lines"] == [
        "environment aml-reactor-components:1", "environment onnx-runtime:1", "code onnx-score:1",
        "component model_evaluate:1", "component model_train:1",
    ]
    spec = workspace.resources[f"{DEV}/components/model_evaluate/versions/1".lower()]["properties"]["componentSpec"]
    assert set(spec["inputs"]) == {"model", "test_data"}
    assert spec["code"].lower().startswith(f"azureml:{DEV}/codes/".lower())
    [upload, *_] = workspace.requests_to("POST", r"/codes/[^/]+/versions/[^/]+/startPendingUpload$")
    assert upload.body == {"pendingUploadType": "TemporaryBlobReference"}


def test_the_test_pipeline_runs_and_its_metrics_are_read_from_the_step_run(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    add_model(workspace, "churn", "3", samples.good_model())

    submitted = platform.submit_job("dev", "mt-churn-3", "model-test", {"model": "azureml:churn:3"},
                                    {"mlops.model": "churn:3"})
    record = jobs.wait(workspace, "dev", "mt-churn-3")
    job = platform.get_job("dev", "mt-churn-3")

    assert submitted.status is JobStatus.QUEUED
    assert record.error is None
    assert job.status is JobStatus.COMPLETED
    assert job.metrics["accuracy"] > 0.8 and job.metrics["auc"] > 0.85, job.metrics
    assert {"precision", "recall", "latency_p95_ms", "evaluate.accuracy"} <= set(job.metrics)
    [step] = [run for run in workspace.runs.values() if run["info"]["run_name"] == "evaluate"]
    assert {"key": "mlflow.parentRunId", "value": "mt-churn-3"} in step["data"]["tags"]
    assert step["info"]["status"] == "FINISHED"
    [event] = workspace.events.published
    assert event["eventType"] == PREFIX + "RunCompleted"
    assert event["data"]["runId"] == "mt-churn-3"
    assert event["data"]["runTags"] == {"mlops.model": "churn:3"}


def test_a_model_that_does_not_load_fails_the_job_with_the_reason(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    add_model(workspace, "churn", "4", samples.BROKEN_MODEL)

    platform.submit_job("dev", "mt-churn-4", "model-test", {"model": "azureml:churn:4"}, {})
    record = jobs.wait(workspace, "dev", "mt-churn-4")

    assert platform.get_job("dev", "mt-churn-4").status is JobStatus.FAILED
    assert "step evaluate failed" in (record.error or "")
    assert "does not load in ONNX Runtime" in (record.error or ""), record.error
    step, event = workspace.events.published  # the failed step's run raises its own (localaml/events.py)
    assert event["eventType"] == step["eventType"] == PREFIX + "RunStatusChanged"
    assert event["data"]["runStatus"] == step["data"]["runStatus"] == "Failed"
    assert (event["data"]["runId"], event["data"]["runType"]) == ("mt-churn-4", "azureml.PipelineRun")
    assert step["data"]["runType"] == "azureml.StepRun"
    assert step["data"]["runTags"]["azureml.pipelinerunid"] == "mt-churn-4"


def test_the_retraining_pipeline_registers_its_model_output_under_the_rules_name(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    inputs = {"training_data": TRAINING_DATA, "outputs.model.name": "credit-risk"}

    platform.submit_job("dev", "rt-credit-risk-1", "retrain", inputs, {"mlops.purpose": "retrain"})
    record = jobs.wait(workspace, "dev", "rt-credit-risk-1")

    assert record.error is None
    job = platform.get_job("dev", "rt-credit-risk-1")
    assert job.status is JobStatus.COMPLETED and job.metrics["train_accuracy"] > 0.8, job.metrics
    [put] = workspace.requests_to("PUT", r"/jobs/rt-credit-risk-1$")
    assert put.body["properties"]["outputs"]["model"]["assetName"] == "credit-risk"
    version = workspace.resources[f"{DEV}/models/credit-risk/versions/1".lower()]["properties"]
    assert version["jobName"] == "rt-credit-risk-1"
    model = platform.get_model("dev", "credit-risk", "1")
    assert model.uri == "azureml:credit-risk:1"
    kinds = [event["eventType"].removeprefix(PREFIX) for event in workspace.events.published]
    assert kinds == ["ModelRegistered", "RunCompleted"]


# -- refusals: Azure's status and body --------------------------------------------------------


def put_job(service: LocalAzureML, name: str, body: dict[str, Any]) -> requests.Response:
    return requests.put(
        f"{service.base_url.rstrip('/')}{DEV}/jobs/{name}", params={"api-version": "2024-01-01-preview"},
        json=body, headers=bearer(service), timeout=30,
    )


def submitted_body(service: LocalAzureML, platform: AzureMLPlatform, name: str) -> dict[str, Any]:
    """The body the real SDK PUT for the test pipeline (a job that ran), to send again changed."""
    add_model(service, "churn", "3", samples.good_model())
    platform.submit_job("dev", name, "model-test", {"model": "azureml:churn:3"}, {})
    jobs.wait(service, "dev", name)
    [put] = service.requests_to("PUT", rf"/jobs/{name}$")
    return copy.deepcopy(put.body)


def test_a_second_put_of_a_job_is_refused_as_immutable_even_the_same_body(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    """Azure ML answers a retried job PUT with JobPropertyImmutable: the job's properties gained the service's
    own entries (azureml.runsource, runSource, runType) and cannot change."""
    body = submitted_body(workspace, platform, "mt-twice")
    same = put_job(workspace, "mt-twice", body)
    body["properties"]["inputs"]["model"]["uri"] = f"{DEV}/models/churn/versions/4"
    changed = put_job(workspace, "mt-twice", body)
    as_stored = copy.deepcopy(workspace.resources[f"{DEV}/jobs/mt-twice".lower()])
    as_stored["properties"]["tags"] = {"reviewed": "yes"}
    retagged = put_job(workspace, "mt-twice", as_stored)

    for answer, named in ((same, "properties"), (changed, "inputs")):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "UserError"
        assert error["details"][0]["code"] == "JobPropertyImmutable"
        assert error["innerError"] == {"code": "JobPropertyImmutable"}
        assert named in error["message"]
    assert retagged.status_code == 200, retagged.text
    stored = workspace.resources[f"{DEV}/jobs/mt-twice".lower()]["properties"]
    assert stored["tags"] == {"reviewed": "yes"} and stored["status"] == "Completed"
    assert stored["properties"]["azureml.runsource"] == "azureml.PipelineRun"


def test_a_job_on_a_compute_that_does_not_exist_is_refused(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    del workspace.resources[f"{DEV}/computes/cpu-cluster".lower()]
    add_model(workspace, "churn", "3", samples.good_model())

    with pytest.raises(PlatformError, match=r"\(400\).*AzureMLCompute cluster cpu-cluster does not exist"):
        platform.submit_job("dev", "mt-no-compute", "model-test", {"model": "azureml:churn:3"}, {})

    assert f"{DEV}/jobs/mt-no-compute".lower() not in workspace.resources


def test_a_step_whose_component_is_not_registered_is_refused(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    """The SDK sends the component's ARM id without looking it up; the service refuses the PUT."""
    for key in [key for key in workspace.resources if "/components/model_evaluate" in key]:
        del workspace.resources[key]
    add_model(workspace, "churn", "3", samples.good_model())

    with pytest.raises(PlatformError, match=r"\(400\).*Component model_evaluate:1 was not found"):
        platform.submit_job("dev", "mt-unregistered", "model-test", {"model": "azureml:churn:3"}, {})

    [put] = workspace.requests_to("PUT", r"/jobs/mt-unregistered$")
    assert put.body["properties"]["jobs"]["evaluate"]["componentId"].endswith("/components/model_evaluate/versions/1")
    assert f"{DEV}/jobs/mt-unregistered".lower() not in workspace.resources


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["jobs"]["evaluate"]["inputs"].update(dataset={"job_input_type": "literal", "value": "x"}),
         "component model_evaluate:1 has no input named dataset"),
        (lambda p: p["jobs"]["evaluate"]["inputs"].pop("test_data"), "required input test_data is not bound"),
        (lambda p: p["inputs"].pop("test_data"), "parent.inputs.test_data, which the pipeline job does not declare"),
    ],
    ids=["undeclared-step-input", "unbound-required-input", "undeclared-pipeline-input"],
)
def test_inputs_the_pipeline_or_its_component_do_not_declare_are_refused(
    workspace: LocalAzureML, platform: AzureMLPlatform, change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    body = submitted_body(workspace, platform, "mt-inputs")
    change(body["properties"])

    answer = put_job(workspace, "mt-bad-inputs", body)

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "UserError" and message in error["message"], error


def test_the_adapter_refuses_an_input_the_pipeline_does_not_declare_before_any_request(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    workspace.requests.clear()

    with pytest.raises(ValueError, match=r"pipeline model-test\.yml has no input 'model_uri'"):
        platform.submit_job("dev", "mt-old-inputs", "model-test", {"model_uri": "azureml:churn:3"}, {})
    with pytest.raises(ValueError, match=r"pipeline retrain\.yml has no output 'modle'"):
        platform.submit_job("dev", "rt-typo", "retrain", {"outputs.modle.name": "x"}, {})

    assert workspace.requests_to("PUT", r"/jobs/") == []


def test_a_command_job_runs_its_own_code_and_registers_its_named_output(
    workspace: LocalAzureML, platform: AzureMLPlatform
) -> None:
    from azure.ai.ml import Input, Output, command

    job = command(
        name="cmd-train-1", code=str(ROOT / "components" / "src"), compute="cpu-cluster",
        environment="azureml:aml-reactor-components:1", experiment_name="adhoc",
        command="python train.py --training-data ${{inputs.training_data}} --model ${{outputs.model}}",
        inputs={"training_data": Input(type="uri_folder", path=TRAINING_DATA)},
        outputs={"model": Output(type="custom_model", name="adhoc-model")},
    )

    platform._clients.ml("dev").jobs.create_or_update(job)
    record = jobs.wait(workspace, "dev", "cmd-train-1")

    assert record.error is None
    assert platform.get_job("dev", "cmd-train-1").metrics["train_accuracy"] > 0.8
    [put] = workspace.requests_to("PUT", r"/jobs/cmd-train-1$")
    assert put.body["properties"]["jobType"] == "Command"
    assert f"{DEV}/models/adhoc-model/versions/1".lower() in workspace.resources
    assert workspace.runs["cmd-train-1"]["info"]["status"] == "FINISHED"


def test_mlflow_tracking_keeps_each_metrics_latest_value_and_refuses_unknown_runs(workspace: LocalAzureML) -> None:
    """MLflow REST API (mlflow.org docs): log-batch / log-metric, runs/get answers the latest value per key."""
    from localaml import mlflow

    base = f"{workspace.base_url.rstrip('/')}/mlflow/v1.0{DEV}/api/2.0/mlflow"
    auth = bearer(workspace, "https://ml.azure.com")
    mlflow.new_run(workspace, "run-1", "exp-1", "evaluate", parent="job-1", status="RUNNING")

    for step, value in ((0, 0.5), (2, 0.9), (1, 0.7)):
        metric = {"key": "accuracy", "value": value, "timestamp": 1000 + step, "step": step}
        requests.post(f"{base}/runs/log-batch", json={"run_id": "run-1", "metrics": [metric]}, headers=auth,
                      timeout=30).raise_for_status()
    got = requests.get(f"{base}/runs/get", params={"run_id": "run-1"}, headers=auth, timeout=30).json()
    unknown = requests.post(f"{base}/runs/log-metric", json={"run_id": "nope", "key": "k", "value": 1,
                                                             "timestamp": 1}, headers=auth, timeout=30)

    assert got["run"]["data"]["metrics"] == [{"key": "accuracy", "value": 0.9, "timestamp": 1002, "step": 2}]
    assert {"key": "mlflow.parentRunId", "value": "job-1"} in got["run"]["data"]["tags"]
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_test_pipeline_canceled_by_the_app_ends_canceled(workspace: LocalAzureML, platform: AzureMLPlatform) -> None:
    """The app's path for a superseded version (`shared.domain.lifecycle.overtaken_in_testing`): its test pipeline
    is canceled through the adapter while it runs, its running step is stopped, and no step runs after it."""
    add_model(workspace, "churn", "5", samples.good_model())
    platform.submit_job("dev", "mt-churn-5", "model-test", {"model": "azureml:churn:5"}, {"mlops.model": "churn:5"})

    platform.cancel_job("dev", "mt-churn-5")
    record = jobs.wait(workspace, "dev", "mt-churn-5")

    assert platform.get_job("dev", "mt-churn-5").status is JobStatus.CANCELED
    assert record.error is None
    assert workspace.runs["mt-churn-5"]["info"]["status"] == "KILLED"
