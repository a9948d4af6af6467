"""The sandbox's models, jobs, events and platform faults, on a real Azurite and real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.receiver import Receiver
from shared.events import AmlEvent, EventKind, parse_event
from shared.platform.port import JobStatus, NotFound, Transient, TryLater
from shared.platform.sandbox import Rejected, SandboxPlatform, jobs, samples
from shared.settings import Settings

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).parents[1] / "fixtures" / "aml-events" / "docs_eventgrid_schema"
WEBHOOK = "/runtime/webhooks/eventgrid?functionName=aml_events"


@pytest.fixture(scope="module")
def onnx() -> dict[str, bytes]:
    return {"good": samples.good_model(), "bad": samples.bad_model(), "broken": samples.BROKEN_MODEL}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as instance:
        yield instance


@pytest.fixture
def platform(settings: Settings, receiver: Receiver) -> Iterator[SandboxPlatform]:
    configured = settings.model_copy(update={"sandbox_events_url": receiver.url + WEBHOOK})
    platform = SandboxPlatform.from_settings(configured)
    platform.publisher.backoff_seconds = 0.01
    yield platform
    platform.close()


def published(receiver: Receiver, kind: EventKind) -> list[AmlEvent]:
    events = [parse_event(raw) for request in receiver.accepted() for raw in request.body]
    return [event for event in events if event.kind is kind]


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())[0]


def test_registering_a_model_publishes_model_registered(platform: SandboxPlatform, receiver: Receiver, onnx) -> None:
    first = platform.register_model("dev", "churn", onnx["good"], {"team": "risk"})
    second = platform.register_model("dev", "churn", onnx["bad"], {})

    assert (first.version, second.version) == ("1", "2")
    assert first.uri == "azureml:churn:1"
    assert platform.get_model("dev", "churn", "1") == first
    requests = receiver.accepted()
    assert len(requests) == 2
    assert requests[0].headers["aeg-event-type"] == "Notification"
    assert requests[0].path == WEBHOOK
    raw = requests[0].body[0]
    assert set(raw) == set(sample("model_registered.json"))
    assert set(raw["data"]) == set(sample("model_registered.json")["data"])
    assert raw["topic"] == (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sandbox"
        "/providers/Microsoft.MachineLearningServices/workspaces/dev"
    )
    assert (raw["subject"], raw["data"]["ModelVersion"], raw["metadataVersion"]) == ("models/churn:1", 1, "1")
    event = parse_event(raw)
    assert (event.kind, event.workspace.name) == (EventKind.MODEL_REGISTERED, "dev")
    assert (event.data.model_name, event.data.model_version, event.data.model_tags) == ("churn", "1", {"team": "risk"})
    assert requests[1].body[0]["id"] != raw["id"]


def test_publishing_retries_server_errors_but_not_rejections(platform: SandboxPlatform, receiver: Receiver, onnx):
    receiver.script(503, 500)
    platform.register_model("dev", "churn", onnx["good"], {})
    assert [request.status for request in receiver.received] == [503, 500, 200]

    receiver.clear()
    receiver.script(400)
    model = platform.register_model("dev", "churn", onnx["good"], {})
    assert [request.status for request in receiver.received] == [400]
    assert platform.get_model("dev", "churn", model.version) == model


def test_tags_are_merged_and_missing_models_are_not_found(platform: SandboxPlatform, onnx) -> None:
    platform.register_model("dev", "churn", onnx["good"], {"team": "risk", "stage": "new"})
    platform.set_model_tags("dev", "churn", "1", {"stage": "passed"})

    assert platform.get_model("dev", "churn", "1").tags == {"team": "risk", "stage": "passed"}
    with pytest.raises(NotFound, match="churn:9"):
        platform.get_model("dev", "churn", "9")
    with pytest.raises(Rejected, match="model name"):
        platform.get_model("dev", "../churn", "1")


def test_promotion_copies_the_version_and_is_idempotent(platform: SandboxPlatform, onnx, tmp_path: Path) -> None:
    model = platform.register_model("dev", "churn", onnx["good"], {"stage": "passed"})

    shared = platform.promote_model(model, "registry:shared")
    assert platform.promote_model(model, "registry:shared") == shared
    assert shared.uri == "azureml://registries/shared/models/churn/versions/1"
    assert shared.tags == {"stage": "passed"}
    prod = platform.promote_model(shared, "prod")
    assert (prod.location, prod.version, prod.uri) == ("prod", "1", "azureml:churn:1")
    assert platform.download_model(prod, tmp_path).read_bytes() == onnx["good"]
    assert platform.register_model("prod", "churn", onnx["bad"], {}).version == "2"

    platform.register_model("qa", "churn", onnx["bad"], {})
    with pytest.raises(Rejected, match="different model churn:1"):
        platform.promote_model(model, "qa")


def test_evaluation_jobs_measure_models_and_publish_their_outcome(
    platform: SandboxPlatform, receiver: Receiver, onnx
) -> None:
    platform.create_dataset("holdout", *samples.make_data(seed=10))
    for version, kind in enumerate(("good", "bad", "broken"), start=1):
        platform.register_model("dev", "churn", onnx[kind], {})
        inputs = {"model_name": "churn", "model_version": str(version), "dataset": "holdout"}
        submitted = platform.submit_job("dev", f"test-churn-{version}", "evaluate-model", inputs, {"v": str(version)})
        assert submitted.status is JobStatus.QUEUED
    again = platform.submit_job("dev", "test-churn-1", "retrain-model", {"dataset": "holdout"}, {})
    assert (again.experiment, again.tags) == ("evaluate-model", {"v": "1"})

    platform.join_jobs()
    good, bad, broken = (platform.get_job("dev", f"test-churn-{version}") for version in (1, 2, 3))

    assert good.status is JobStatus.COMPLETED and bad.status is JobStatus.COMPLETED
    assert good.metrics["accuracy"] > 0.85 and good.metrics["auc"] > 0.9
    assert bad.metrics["accuracy"] < 0.65 and bad.metrics["auc"] < 0.65
    assert 0 < good.metrics["latency_p95_ms"] < 1000
    assert broken.status is JobStatus.FAILED
    assert "model churn:3 in dev does not load" in (broken.error or "")
    completed = {event.data.run_id: event for event in published(receiver, EventKind.RUN_COMPLETED)}
    assert set(completed) == {"test-churn-1", "test-churn-2"}
    event = completed["test-churn-1"]
    assert event.subject == f"experiments/{event.data.experiment_id}/runs/test-churn-1"
    assert (event.data.experiment_name, event.data.run_tags) == ("evaluate-model", {"v": "1"})
    assert set(event.raw["data"]) == set(sample("run_completed.json")["data"])
    [failed] = published(receiver, EventKind.RUN_STATUS_CHANGED)
    assert (failed.data.run_id, failed.raw["data"]["runStatus"]) == ("test-churn-3", "Failed")


def test_retraining_registers_a_new_version(platform: SandboxPlatform, receiver: Receiver) -> None:
    platform.create_dataset("fresh", *samples.make_data(seed=11))
    inputs = {"dataset": "fresh", "register_as": "churn"}
    platform.submit_job("dev", "retrain-churn-1", "retrain-model", inputs, {"cause": "drift"})
    platform.join_jobs()

    job = platform.get_job("dev", "retrain-churn-1")
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.metrics["train_accuracy"] > 0.85
    assert platform.get_model("dev", "churn", "1").tags["trained_by_job"] == "retrain-churn-1"
    [registered] = published(receiver, EventKind.MODEL_REGISTERED)
    assert registered.subject == "models/churn:1"
    [completed] = published(receiver, EventKind.RUN_COMPLETED)
    assert completed.data.run_properties["model_version"] == "1"


def test_submissions_that_cannot_run_are_rejected(platform: SandboxPlatform) -> None:
    with pytest.raises(Rejected, match="unknown pipeline"):
        platform.submit_job("dev", "job-1", "train-everything", {"dataset": "d"}, {})
    with pytest.raises(Rejected, match="model_uri"):
        platform.submit_job("dev", "job-1", "evaluate-model", {"dataset": "d"}, {})
    with pytest.raises(Rejected, match="job name"):
        platform.submit_job("dev", "job/1", "retrain-model", {"dataset": "d"}, {})
    with pytest.raises(NotFound):
        platform.get_job("dev", "job-1")


def test_a_job_whose_runner_never_reports_ends_failed(platform: SandboxPlatform) -> None:
    jobs.submit(platform.store, "dev", "orphan", "retrain-model", {"dataset": "d"}, {})
    assert platform.get_job("dev", "orphan").status is JobStatus.QUEUED

    platform.job_timeout_seconds = 0
    job = platform.get_job("dev", "orphan")
    assert job.status is JobStatus.FAILED and "stopped without reporting" in (job.error or "")


def test_teardown_stops_runners_that_are_still_going(platform: SandboxPlatform, settings: Settings) -> None:
    platform.submit_job("dev", "slow-1", "retrain-model", {"dataset": "missing"}, {})
    [job] = jobs.running(platform.store)
    another_process = SandboxPlatform.from_settings(settings)

    another_process.stop_jobs(timeout=0)

    assert jobs.running(platform.store) == []
    assert not jobs.is_runner(job["pid"], "slow-1")
    stopped = platform.get_job("dev", "slow-1")
    assert stopped.status is JobStatus.FAILED and "stopped by the sandbox's teardown" in (stopped.error or "")


def test_drift_detection_publishes_dataset_drift_detected(platform: SandboxPlatform, receiver: Receiver) -> None:
    platform.publish_drift("dev", "churn-inputs", 0.42)

    [event] = published(receiver, EventKind.DATASET_DRIFT_DETECTED)
    assert (event.data.data_drift_name, event.data.drift_coefficient) == ("churn-inputs", 0.42)
    assert event.subject == f"datadrift/{event.data.data_drift_id}/run/{event.data.run_id}"
    assert set(event.raw["data"]) == set(sample("dataset_drift_detected.json")["data"])


def test_injected_platform_faults_fire_then_clear(platform: SandboxPlatform, settings: Settings, onnx) -> None:
    model = platform.register_model("dev", "churn", onnx["good"], {})
    platform.inject_platform_fault("get_model", "503", times=2)
    other_process = SandboxPlatform.from_settings(settings)

    with pytest.raises(Transient, match="503"):
        other_process.get_model("dev", "churn", "1")
    with pytest.raises(Transient, match="503"):
        platform.get_model("dev", "churn", "1")
    assert platform.get_model("dev", "churn", "1") == model

    platform.inject_platform_fault("get_endpoint", "429")
    with pytest.raises(TryLater) as throttled:
        platform.get_endpoint("prod", "churn")
    assert throttled.value.retry_after and throttled.value.retry_after > 0
    platform.inject_platform_fault("promote_model", "timeout")
    with pytest.raises(Transient, match="timed out"):
        platform.promote_model(model, "prod")
    with pytest.raises(Rejected, match="not a port method"):
        platform.inject_platform_fault("register_model")
