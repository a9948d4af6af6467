"""The app's adapter cancels a job in the local Azure ML service: `AzureMLPlatform.cancel_job` starts
`POST .../jobs/<name>/cancel` (REST spec example `Job/cancel.json`; behaviour and sources in
`localaml/jobs.py`), the running step is stopped, and the job ends Canceled. The app cancels a version's
test job when a newer version supersedes it while it runs (`shared.domain.lifecycle.overtaken_in_testing`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.ai.ml import command
from azure.ai.ml.entities import Environment

from devhost.localaml import COMPUTE, LocalAzureMLStack, quiet_uploads, running_local_azureml
from devhost.waiting import wait_until
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import JobStatus, NotFound
from shared.settings import Settings

IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzureMLStack]:
    with running_local_azureml(tmp_path_factory.mktemp("cancel"), seed_workspaces=False) as running:
        service = running.service
        for workspace in ("dev", "prod"):
            service.add_workspace(workspace)
        service.add(f"{service.workspace_id('dev')}/computes/{COMPUTE}", {"computeType": "AmlCompute"},
                    location="eastus")
        yield running


@pytest.fixture(scope="module")
def platform(local: LocalAzureMLStack) -> AzureMLPlatform:
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local.app_settings()})
    return AzureMLPlatform.from_settings(settings)


def _submit(local: LocalAzureMLStack, name: str, script: str) -> None:
    job = command(name=name, command=f'python -c "{script}"', environment=Environment(image=IMAGE),
                  compute=COMPUTE)
    with quiet_uploads():
        local.client("dev").jobs.create_or_update(job)


def _status(platform: AzureMLPlatform, name: str) -> JobStatus:
    """How the job ended (it really runs: a wall-clock wait)."""

    def ended() -> JobStatus | None:
        status = platform.get_job("dev", name).status
        return status if status.is_terminal else None

    found = wait_until(ended, timeout=60, what=f"job {name} to end")
    assert found is not None
    return found


def test_a_running_job_is_canceled_and_ends_canceled(local: LocalAzureMLStack, platform: AzureMLPlatform) -> None:
    _submit(local, "cancel-me", "import time; time.sleep(120)")

    platform.cancel_job("dev", "cancel-me")

    assert platform.get_job("dev", "cancel-me").status in (JobStatus.RUNNING, JobStatus.CANCELED)  # CancelRequested
    assert _status(platform, "cancel-me") is JobStatus.CANCELED
    cancels = local.service.requests_to("POST", r"/jobs/cancel-me/cancel$")
    assert len(cancels) == 1
    assert not local.service.requests_to("GET", r"/mfeOperationResults/")  # started, not polled


def test_a_job_that_has_ended_keeps_its_outcome(local: LocalAzureMLStack, platform: AzureMLPlatform) -> None:
    _submit(local, "done-already", "print(1)")
    assert _status(platform, "done-already") is JobStatus.COMPLETED

    platform.cancel_job("dev", "done-already")

    assert platform.get_job("dev", "done-already").status is JobStatus.COMPLETED


def test_a_missing_job_is_not_found(platform: AzureMLPlatform) -> None:
    with pytest.raises(NotFound):
        platform.cancel_job("dev", "no-such-job")
