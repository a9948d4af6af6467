"""Contracts of the Azure ML adapter for models, promotion and jobs: the real azure-ai-ml over HTTPS to the fake."""

from __future__ import annotations

import re

import pytest

from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import JobStatus, ModelVersion, NotFound, PlatformError

DEV = LocalAzureML.workspace_id("dev")
REGISTRY = "registry:mlops-registry"
MODELS_API = "2023-08-01-preview"
JOBS_API = "2024-01-01-preview"
REGISTRY_API = "2021-10-01-dataplanepreview"


def test_get_model_reads_the_version_and_its_tags(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_model(DEV, "churn", "3", {"stage": "new"})

    model = platform.get_model("dev", "churn", "3")

    assert model == ModelVersion(
        location="dev", name="churn", version="3", tags={"stage": "new"}, uri="azureml:churn:3",
        created_by=model.created_by, modified_by=model.modified_by,
    )
    # systemData: who registered the version and who changed it last (the review gate's four eyes).
    assert model.created_by == model.modified_by == "localaml@localaml.test"
    [request] = fake.requests
    assert (request.method, request.path, request.api_version) == ("GET", f"{DEV}/models/churn/versions/3", MODELS_API)
    assert request.headers["Authorization"].startswith("Bearer ")


def test_latest_asks_for_the_newest_version(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_model(DEV, "churn", "7")

    assert platform.get_model("dev", "churn", "latest").version == "7"

    [request] = fake.requests
    assert request.path == f"{DEV}/models/churn/versions"
    assert request.query == {"api-version": MODELS_API, "$orderBy": "createdtime desc", "$top": "1"}


def test_registry_models_are_found_through_one_discovery(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_model(fake.registry_id("mlops-registry"), "churn", "3")

    first = platform.get_model(REGISTRY, "churn", "3")
    platform.get_model(REGISTRY, "churn", "3")

    assert first.uri == "azureml://registries/mlops-registry/models/churn/versions/3"
    assert len(fake.requests_to("GET", r"^/registrymanagement/v1\.0/registries/mlops-registry/discovery$")) == 1
    gets = fake.requests_to("GET", r"/registries/mlops-registry/models/churn/versions/3$")
    assert [r.path.split("/providers")[0] for r in gets] == [
        "/mferp/managementfrontend/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-registry"
    ] * 2
    assert {r.api_version for r in gets} == {REGISTRY_API}


def test_a_missing_model_is_not_found_with_a_clear_message(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    with pytest.raises(NotFound, match=r"model churn:9 in dev was not found \(404\)"):
        platform.get_model("dev", "churn", "9")


def test_bad_names_are_refused_before_any_request(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    with pytest.raises(ValueError, match=r"model name '\.\./x'"):
        platform.get_model("dev", "../x", "1")
    with pytest.raises(ValueError, match="registry name"):
        platform.get_model("registry:a/b", "churn", "1")
    assert fake.requests == []


def test_set_model_tags_merges_into_the_version(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_model(DEV, "churn", "3", {"stage": "new", "owner": "ds"})

    platform.set_model_tags("dev", "churn", "3", {"stage": "testing"})

    [put] = fake.requests_to("PUT", r"/models/churn/versions/3$")
    assert put.api_version == MODELS_API
    assert put.body["properties"]["tags"] == {"stage": "testing", "owner": "ds"}
    assert platform.get_model("dev", "churn", "3").tags == {"stage": "testing", "owner": "ds"}


def test_promotion_imports_the_version_into_the_registry_once(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_model(DEV, "churn", "3")
    source = platform.get_model("dev", "churn", "3")

    promoted = platform.promote_model(source, REGISTRY)
    again = platform.promote_model(source, REGISTRY)

    workspace_guid = fake.resources[DEV.lower()]["properties"]["workspaceId"]
    [imported] = fake.requests_to("POST", r"/registries/mlops-registry/import$")
    assert imported.path.startswith("/mferp/managementfrontend/subscriptions/")
    assert imported.api_version == REGISTRY_API
    assert imported.body == {
        "properties": {
            "referenceType": "Id",
            "destinationName": "churn",
            "destinationVersion": "3",
            "sourceAssetId": f"azureml://locations/eastus/workspaces/{workspace_guid}/models/churn/versions/3",
        }
    }
    assert promoted == again
    assert promoted.location == REGISTRY
    assert promoted.uri == "azureml://registries/mlops-registry/models/churn/versions/3"


def test_promotion_only_goes_from_a_workspace_to_a_registry(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    from shared.domain.ports import ConfigurationError

    with pytest.raises(ConfigurationError, match="promotes from a workspace to 'registry:<name>'"):
        platform.promote_model(ModelVersion(location="dev", name="churn", version="3"), "prod")


def seed_pipeline_assets(fake: LocalAzureML) -> None:
    """What a job submission of the model-test pipeline needs in dev: a model, the cluster, the component."""
    fake.add_model(DEV, "churn", "3")
    fake.add(f"{DEV}/computes/cpu-cluster", {"computeType": "AmlCompute"})
    fake.add(f"{DEV}/components/model_evaluate", {"latestVersion": "1", "properties": {}, "tags": {}})
    fake.add(
        f"{DEV}/components/model_evaluate/versions/1",
        {
            "componentSpec": {
                "name": "model_evaluate", "version": "1", "type": "command", "command": "python evaluate.py",
                "environment": "azureml:evaluate-env:1",
                "inputs": {"model": {"type": "custom_model"}, "test_data": {"type": "uri_folder"}},
            },
            "isAnonymous": False, "properties": {}, "tags": {},
        },
    )


def test_submit_job_puts_the_repo_pipeline_with_the_model_as_input(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    seed_pipeline_assets(fake)

    inputs, tags = {"model": "azureml:churn:3"}, {"mlops.model": "churn:3"}
    job = platform.submit_job("dev", "mt-churn-3", "model-test", inputs, tags)

    assert (job.name, job.status, job.experiment) == ("mt-churn-3", JobStatus.QUEUED, "model-test")
    [put] = fake.requests_to("PUT", r"/jobs/")
    assert (put.path, put.api_version) == (f"{DEV}/jobs/mt-churn-3", JOBS_API)
    body = put.body["properties"]
    assert body["jobType"] == "Pipeline"
    assert body["experimentName"] == "model-test"
    assert body["tags"] == {"mlops.model": "churn:3"}
    assert body["inputs"]["model"] == {"uri": f"{DEV}/models/churn/versions/3", "jobInputType": "custom_model"}
    assert body["jobs"]["evaluate"]["componentId"] == f"{DEV}/components/model_evaluate/versions/1"
    assert body["settings"]["default_compute"] == f"{DEV}/computes/cpu-cluster"


def test_submitting_an_existing_job_returns_it_without_a_put(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add(f"{DEV}/jobs/mt-churn-3", {"jobType": "Pipeline", "status": "Running", "experimentName": "model-test",
                                        "tags": {}, "properties": {}})

    job = platform.submit_job("dev", "mt-churn-3", "model-test", {"model": "azureml:churn:3"}, {})

    assert job.status is JobStatus.RUNNING
    assert fake.requests_to("PUT", r"/jobs/") == []


def test_a_conflicting_submit_finds_the_job_the_other_one_made(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    seed_pipeline_assets(fake)
    fake.add(f"{DEV}/jobs/mt-churn-3", {"jobType": "Pipeline", "status": "Preparing", "experimentName": "model-test",
                                        "tags": {}, "properties": {}})
    fake.fail("GET", r"/jobs/mt-churn-3$", 404, code="ResourceNotFound")  # not there yet when first looked at
    fake.fail("PUT", r"/jobs/mt-churn-3$", 409, code="Conflict", message="Job already exists")

    job = platform.submit_job("dev", "mt-churn-3", "model-test", {"model": "azureml:churn:3"}, {})

    assert job.status is JobStatus.QUEUED
    assert len(fake.requests_to("PUT", r"/jobs/mt-churn-3$")) == 1


# Azure answers the losing PUT of a job name with 400 UserError "A job with this name already exists", inner
# code JobPropertyImmutable (as seen by microsoft/ai4s-jobq, whose Workforce tolerates this exact answer).
JOB_EXISTS = {"error": {"code": "UserError", "message": "A job with this name already exists.",
                        "innerError": {"code": "Immutable", "innerError": {"code": "JobPropertyImmutable"}}}}


@pytest.mark.parametrize("exact_body", [False, True])
def test_a_submit_that_loses_the_race_finds_the_job_on_azures_user_error(
    platform: AzureMLPlatform, fake: LocalAzureML, exact_body: bool
) -> None:
    from localaml.service import Fault

    seed_pipeline_assets(fake)
    fake.add(f"{DEV}/jobs/mt-churn-3", {"jobType": "Pipeline", "status": "Running", "experimentName": "model-test",
                                        "tags": {}, "properties": {}})
    fake.fail("GET", r"/jobs/mt-churn-3$", 404, code="ResourceNotFound")  # not there yet when first looked at
    if exact_body:
        fake.faults.append(Fault("PUT", re.compile(r"/jobs/mt-churn-3$"), 400, {}, JOB_EXISTS, 1))
    else:
        fake.fail("PUT", r"/jobs/mt-churn-3$", 400, code="UserError", message=JOB_EXISTS["error"]["message"])

    job = platform.submit_job("dev", "mt-churn-3", "model-test", {"model": "azureml:churn:3"}, {})

    assert (job.name, job.status) == ("mt-churn-3", JobStatus.RUNNING)
    assert len(fake.requests_to("PUT", r"/jobs/mt-churn-3$")) == 1


def test_a_refused_submit_of_a_job_that_does_not_exist_keeps_the_refusal(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    seed_pipeline_assets(fake)
    fake.fail("PUT", r"/jobs/mt-churn-3$", 400, code="UserError", message="compute cpu-cluster not found")

    with pytest.raises(PlatformError, match=r"job mt-churn-3 in dev \(400\): UserError: compute cpu-cluster"):
        platform.submit_job("dev", "mt-churn-3", "model-test", {"model": "azureml:churn:3"}, {})


@pytest.mark.parametrize(("status", "expected"), [("NotResponding", JobStatus.RUNNING), ("Paused", JobStatus.QUEUED),
                                                  ("Unknown", JobStatus.QUEUED)])
def test_every_rest_job_status_is_read_and_only_ends_are_terminal(
    platform: AzureMLPlatform, fake: LocalAzureML, status: str, expected: JobStatus
) -> None:
    """REST JobStatus (azure-rest-api-specs mfe.json): NotResponding can go back to any earlier state."""
    fake.add(f"{DEV}/jobs/mt-churn-3", {"jobType": "Pipeline", "status": status, "tags": {}, "properties": {}})

    job = platform.get_job("dev", "mt-churn-3")

    assert job.status is expected
    assert not job.status.is_terminal


def test_an_input_the_pipeline_does_not_declare_is_refused(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    with pytest.raises(ValueError, match=r"pipeline model-test\.yml has no input 'modle'"):
        platform.submit_job("dev", "mt-churn-3", "model-test", {"modle": "azureml:churn:3"}, {})
    with pytest.raises(ValueError, match=r"pipeline '\.\./x'"):
        platform.submit_job("dev", "mt-churn-3", "../x", {}, {})


def test_a_completed_job_reports_its_and_its_steps_metrics(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add(f"{DEV}/jobs/mt-churn-3", {"jobType": "Pipeline", "status": "Completed", "experimentName": "model-test",
                                        "tags": {"mlops.model": "churn:3"}, "properties": {}})
    fake.runs["mt-churn-3"] = _run("mt-churn-3", "mt-churn-3", {"duration_s": 42.0}, parent=None)
    fake.runs["step-1"] = _run("step-1", "evaluate", {"accuracy": 0.91, "auc": 0.95}, parent="mt-churn-3")
    fake.runs["step-2"] = _run("step-2", "fairness", {"accuracy": 0.5, "gap": 0.02}, parent="mt-churn-3", start=2)

    job = platform.get_job("dev", "mt-churn-3")

    assert job.status is JobStatus.COMPLETED
    assert job.tags == {"mlops.model": "churn:3"}
    assert job.metrics == {
        "duration_s": 42.0, "accuracy": 0.91, "auc": 0.95, "gap": 0.02,
        "evaluate.accuracy": 0.91, "evaluate.auc": 0.95, "fairness.accuracy": 0.5, "fairness.gap": 0.02,
    }
    tracking = f"/mlflow/v1.0{DEV}/api/2.0/mlflow"
    [get] = fake.requests_to("GET", r"/api/2\.0/mlflow/runs/get$")
    assert (get.path, get.query) == (f"{tracking}/runs/get", {"run_id": "mt-churn-3"})
    assert get.headers["Authorization"].startswith("Bearer ")
    searches = fake.requests_to("POST", r"/api/2\.0/mlflow/runs/search$")
    assert searches[0].body == {
        "experiment_ids": ["exp-1"], "filter": "tags.mlflow.parentRunId = 'mt-churn-3'", "max_results": 100,
    }


def test_a_running_job_reads_no_metrics(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add(f"{DEV}/jobs/mt-churn-3", {"jobType": "Pipeline", "status": "Running", "tags": {}, "properties": {}})

    assert platform.get_job("dev", "mt-churn-3").metrics == {}
    assert fake.requests_to("GET", "mlflow") == []


def _run(run_id: str, name: str, metrics: dict[str, float], parent: str | None, start: int = 1) -> dict:
    tags = [{"key": "mlflow.runName", "value": name}]
    if parent:
        tags.append({"key": "mlflow.parentRunId", "value": parent})
    return {
        "info": {"run_id": run_id, "run_name": name, "experiment_id": "exp-1", "status": "FINISHED",
                 "start_time": start},
        "data": {"metrics": [{"key": k, "value": v, "timestamp": 1, "step": 0} for k, v in metrics.items()],
                 "tags": tags},
    }
