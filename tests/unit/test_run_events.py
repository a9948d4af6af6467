"""Run events as Azure ML raises them and the app's one reaction per pipeline (issue 25, points 4 and 5).

- RunStatusChanged "only trigger[s] when the run status is failed" (MicrosoftDocs/azure-ai-docs,
  articles/machine-learning/how-to-use-event-grid.md): a canceled test job raises no event, and the resync
  finds it by reading the job.
- Step runs raise their own run events (`runType` `azureml.StepRun`, tag `azureml.pipelinerunid`:
  Azure-Samples/azure-machine-learning-pipeline-observability-sample, README.md): the app acts on the
  pipeline's own event only, so a failed step and its failed pipeline give one notice.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from devhost.receiver import Receiver
from localaml import events as local_events
from shared.bootstrap import Services
from shared.domain.events import parse_event
from shared.domain.ports import Job, JobStatus
from shared.domain.records import Stage
from shared.reactor import reactions
from tests.unit.test_isolation_fakes import POLICY, START, FakePlatform, fake_services, fake_state

DEV = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
       "Microsoft.MachineLearningServices/workspaces/dev")


@pytest.fixture
def services() -> Services:
    return fake_services(POLICY, workspaces={"dev": DEV})


def _job(workspace: str = "dev", name: str = "test-churn-v4", status: str = "failed") -> dict[str, Any]:
    return {"workspace": workspace, "name": name, "experiment": "model-test", "experiment_id": "e1",
            "tags": {}, "properties": {}, "status": status}


def test_the_local_service_raises_no_run_event_for_a_canceled_job() -> None:
    """Before, a canceled job raised RunStatusChanged (runStatus Canceled)."""
    assert local_events.run_finished(_job(status="canceled")) == []
    [failed] = local_events.run_finished(_job(status="failed"))
    [completed] = local_events.run_finished(_job(status="completed"))
    assert (failed["eventType"], failed["data"]["runStatus"]) == (
        "Microsoft.MachineLearningServices.RunStatusChanged", "Failed")
    assert completed["eventType"] == "Microsoft.MachineLearningServices.RunCompleted"


def test_a_canceled_job_sends_subscribers_nothing() -> None:
    """A canceled job's events, none, were delivered as an empty array, which the webhook refuses (400): a
    fresh-clone run's redelivery met it."""
    with Receiver() as receiver:
        publisher = local_events.EventPublisher([receiver.url + "/aml-events"])
        publisher.publish(*local_events.run_finished(_job(status="canceled")))
        publisher.publish(*local_events.run_finished(_job(status="failed")))
        for delivery in [thread for thread in threading.enumerate() if thread.name == "event-grid"]:
            delivery.join(timeout=10)

    assert [len(received.body) for received in receiver.received] == [1]
    assert publisher.published[0]["data"]["runStatus"] == "Failed"


def test_a_canceled_test_job_is_found_by_the_resync_and_fails_its_version(services: Services) -> None:
    """No event announces the cancel: the resync reads the test job and the lifecycle ends failed."""
    platform = services.platform
    assert isinstance(platform, FakePlatform)
    status = JobStatus.RUNNING

    def job(self: FakePlatform, workspace: str, name: str) -> Job:
        return Job(workspace=workspace, name=name, status=status)

    platform.get_job = job.__get__(platform)  # type: ignore[method-assign]
    platform.register("churn", "4", created_at=START)
    reactions.resync(services)  # discovered and its test job submitted
    assert services.state.lifecycles.get("churn:4").stage is Stage.TESTING  # type: ignore[union-attr]

    status = JobStatus.CANCELED  # canceled in studio: no event says so
    reactions.resync(services)

    assert services.state.lifecycles.get("churn:4").stage is Stage.FAILED  # type: ignore[union-attr]


def _step_event() -> dict[str, Any]:
    event = local_events.step_failed("dev", "e1", "model-test", "step-run-1", "test-churn-v4", "evaluate")
    event["topic"] = DEV
    return event


def test_a_failed_step_s_event_is_left_to_its_pipeline_and_reads_nothing(services: Services) -> None:
    read: list[str] = []
    platform = services.platform
    assert isinstance(platform, FakePlatform)
    original = FakePlatform.get_job

    def get_job(self: FakePlatform, workspace: str, name: str) -> Job:
        read.append(name)
        return original(self, workspace, name).model_copy(update={"status": JobStatus.FAILED})

    platform.get_job = get_job.__get__(platform)  # type: ignore[method-assign]
    reactions.react(parse_event(_step_event()), services)

    assert read == []
    assert [(e.outcome, e.reason) for e in fake_state(services).entries if e.action == "react"] == [
        ("recorded", "run step-run-1 is a step of pipeline test-churn-v4: the pipeline's own event is the one acted on")
    ]


def test_a_failed_step_and_its_failed_pipeline_give_one_notice(services: Services) -> None:
    platform = services.platform
    assert isinstance(platform, FakePlatform)

    def failed(self: FakePlatform, workspace: str, name: str) -> Job:
        return Job(workspace=workspace, name=name, status=JobStatus.FAILED, experiment="nightly")

    platform.get_job = failed.__get__(platform)  # type: ignore[method-assign]
    [pipeline] = local_events.run_finished(_job(name="nightly-etl"))
    pipeline["topic"] = DEV
    step = _step_event()
    step["data"]["runTags"]["azureml.pipelinerunid"] = step["data"]["runProperties"]["azureml.pipelinerunid"] = (
        "nightly-etl")

    reactions.react(parse_event(step), services)
    reactions.react(parse_event(pipeline), services)

    assert [n.id for n in services.notifier.sent.values()] == ["job.failed:dev:nightly-etl"]  # type: ignore[attr-defined]


def test_a_step_run_is_known_by_its_run_type_alone() -> None:
    step = _step_event()
    step["data"]["runTags"] = {}
    step["data"]["runProperties"] = {}
    assert parse_event(step).data.pipeline_run_id == ""  # type: ignore[union-attr]
    [pipeline] = local_events.run_finished(_job())
    pipeline["topic"] = DEV
    assert parse_event(pipeline).data.pipeline_run_id is None  # type: ignore[union-attr]
