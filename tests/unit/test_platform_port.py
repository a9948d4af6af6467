"""The port's view of Azure ML states, and how the adapter's errors and the rollout read them."""

from __future__ import annotations

import pytest

from shared.adapters.azureml.errors import translated
from shared.domain.ports import Deployment, JobStatus, PlatformError

# Every word of the REST JobStatus enum (Azure/azure-rest-api-specs, machinelearningservices stable/2025-12-01
# mfe.json `JobStatus`; azure-ai-ml `_restclient/arm_ml_service/models/_enums.py`).
REST_JOB_STATUSES = [
    "NotStarted", "Starting", "Provisioning", "Preparing", "Queued", "Running", "Finalizing", "CancelRequested",
    "Completed", "Failed", "Canceled", "NotResponding", "Paused", "Unknown",
]


@pytest.mark.parametrize("word", REST_JOB_STATUSES)
def test_every_rest_job_status_is_known(word: str) -> None:
    assert JobStatus.parse(word) in JobStatus


def test_only_completed_failed_and_canceled_are_ends() -> None:
    ends = {word for word in REST_JOB_STATUSES if JobStatus.parse(word).is_terminal}

    assert ends == {"Completed", "Failed", "Canceled"}, "NotResponding can go back to any earlier state"


@pytest.mark.parametrize(
    ("state", "busy", "failed"),
    [("Creating", True, False), ("Updating", True, False), ("Scaling", True, False), ("Deleting", True, False),
     ("Succeeded", False, False), ("Failed", False, True), ("Canceled", False, True)],
)
def test_deployment_states_as_the_rest_spec_names_them(state: str, busy: bool, failed: bool) -> None:
    deployment = Deployment(name="green", model_uri="azureml:churn:3", provisioning_state=state)

    assert (deployment.is_busy, deployment.has_failed) == (busy, failed)


@pytest.mark.parametrize("raised", [KeyError("sasUri"), AttributeError("datastore"), ValueError("bad answer")])
def test_nothing_the_sdk_raises_escapes_as_anything_but_a_platform_error_naming_the_operation(
    raised: Exception,
) -> None:
    expected = rf"downloading model churn:3: {type(raised).__name__}"
    with (
        pytest.raises(PlatformError, match=expected) as caught,
        translated("downloading model churn:3", identity="me", scope="the workspace dev"),
    ):
        raise raised

    assert caught.value.__cause__ is raised
