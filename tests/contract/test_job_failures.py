"""A failed job says why, as Azure ML keeps it: the error on the job's run and its step's
`user_logs/std_log.txt`, read through the run history's `runs/<id>/details` (localaml/runhistory.py names
the sources) by the app's adapter over real HTTPS, from a job the local service really ran. A file that is
no ONNX model fails its test saying so; locally, the job's link is the service's own page, which shows the
same to a browser without a token."""

from __future__ import annotations

import requests

from devhost.entra import LocalEntraStack
from localaml import jobs
from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.adapters.azureml.clients import Cloud
from shared.domain.ports import JobStatus
from shared.settings import Settings
from tests.contract.conftest import bearer
from tests.contract.test_localaml_jobs import add_model, azurite_tls, registered, workspace  # noqa: F401 (fixtures)

NOT_A_MODEL = b"root:x:0:0:root:/root:/bin/bash\n"


def test_a_file_that_is_no_onnx_model_fails_its_test_with_its_reason_and_log(
    workspace: LocalAzureML, entra: LocalEntraStack, cloud: Cloud  # noqa: F811
) -> None:
    local = Settings.from_environ({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "MLOPS_REGISTRY": "mlops-registry",
        "MLOPS_WORKSPACES": f"dev={workspace.workspace_id('dev')},prod={workspace.workspace_id('prod')}",
        "MLOPS_AZUREML_ENDPOINT": workspace.base_url, **entra.app_settings(),
    })
    platform = AzureMLPlatform(local, cloud=cloud)
    add_model(workspace, "churn", "9", NOT_A_MODEL)

    platform.submit_job("dev", "mt-churn-9", "model-test", {"model": "azureml:churn:9"}, {})
    jobs.wait(workspace, "dev", "mt-churn-9")
    job = platform.get_job("dev", "mt-churn-9")

    assert job.status is JobStatus.FAILED
    assert job.error and "step evaluate failed" in job.error and "does not load in ONNX Runtime" in job.error
    assert job.log and "does not load in ONNX Runtime" in job.log.splitlines()[-1], job.log
    assert job.log.splitlines()[0].startswith("$ "), "the log begins with the step's command, as Azure's does"
    [details] = workspace.requests_to("GET", r"/history/v1\.0/.+/runs/mt-churn-9/details$")
    assert details.headers.get("Authorization", "").startswith("Bearer ")

    assert job.studio_url == f"{workspace.base_url}localaml/jobs/dev/mt-churn-9"
    page = requests.get(job.studio_url, timeout=10)  # a browser's click: no token
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Failed" in page.text and "does not load in ONNX Runtime" in page.text
    assert "evaluate: user_logs/std_log.txt" in page.text


def test_a_completed_job_has_no_error_and_its_details_list_its_log(
    workspace: LocalAzureML, platform: AzureMLPlatform  # noqa: F811
) -> None:
    from localaml import samples

    add_model(workspace, "churn", "8", samples.good_model())
    platform.submit_job("dev", "mt-churn-8", "model-test", {"model": "azureml:churn:8"}, {})
    jobs.wait(workspace, "dev", "mt-churn-8")
    job = platform.get_job("dev", "mt-churn-8")
    assert job.status is JobStatus.COMPLETED and job.error is None and job.log is None
    assert job.studio_url and job.studio_url.startswith("https://ml.azure.com/runs/mt-churn-8"), \
        "against Azure (no local endpoint set) the link stays Azure ML studio's"
    [step] = [run for run in workspace.runs.values() if run["info"]["run_name"] == "evaluate"
              and {"key": "mlflow.parentRunId", "value": "mt-churn-8"} in run["data"]["tags"]]
    answer = requests.get(f"{workspace.base_url}history/v1.0{LocalAzureML.workspace_id('dev')}/runs/"
                          f"{step['info']['run_id']}/details", headers=bearer(workspace), timeout=10).json()
    assert answer["status"] == "Completed" and "error" not in answer
    assert set(answer["logFiles"]) == {"user_logs/std_log.txt"}
    assert requests.get(f"{workspace.base_url}history/v1.0{LocalAzureML.workspace_id('dev')}/runs/nope/details",
                        headers=bearer(workspace), timeout=10).status_code == 404
