"""Model-monitoring drift (v2) and dataset drift (v1): what the reactions do, against small fakes.

The breach events are composed from public sources (tests/fixtures/aml-events/composed_model_monitoring/SOURCES.md):
the step run of a breached signal carries `azureml_modelmonitor_threshold_breached` (Azure/azureml-assets,
model_monitor_evaluate_metrics_threshold/evaluate_metrics_threshold.py) and names its monitoring pipeline run
in `runProperties.azureml.pipelinerunid`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.bootstrap import Services
from shared.domain.decisions import retrain_job_name
from shared.domain.events import BREACH_TAG, parse_event
from shared.domain.notification import Notification
from shared.domain.policy import parse_policy
from shared.domain.ports import Job, JobStatus, NotFound
from shared.domain.records import AuditEntry
from shared.reactor.reactions import react
from shared.settings import Settings
from tests.conftest import FIXTURES

WORKSPACE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/mlw-dev"
SIGNAL_EVENT = FIXTURES / "aml-events/composed_model_monitoring/run_status_changed_signal_breached.json"
MONITORING_RUN = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
POLICY = """
rules:
  - name: credit-risk
    models: {name: "credit-risk*"}
    test: {pipeline: evaluate-model}
    drift:
      monitor: "credit-risk-*"
      threshold: 0.3
      model_monitor: credit-risk-monitor
      signals: [data_drift, prediction_drift]
      pipeline: retrain-model
      inputs: {dataset: credit-risk-train}
    notify: {retraining.started: [teams]}
"""


@dataclass
class FakePlatform:
    jobs: dict[str, Job] = field(default_factory=dict)
    submitted: list[tuple[str, str, str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    def get_job(self, workspace: str, job_name: str) -> Job:
        if job_name not in self.jobs:
            raise NotFound(f"job {job_name} in {workspace}")
        return self.jobs[job_name]

    def submit_job(self, workspace: str, job_name: str, pipeline: str, inputs: dict[str, str],
                   tags: dict[str, str]) -> Job:
        """Idempotent by name, as the port requires."""
        self.submitted.append((workspace, job_name, pipeline, inputs, tags))
        return self.jobs.setdefault(job_name, Job(workspace=workspace, name=job_name, status=JobStatus.QUEUED,
                                                   tags=tags))


@dataclass
class FakeNotifier:
    sent: dict[str, tuple[Notification, list[str] | None]] = field(default_factory=dict)

    def notify(self, notification: Notification, channels: list[str] | None = None) -> None:
        """One send per decision id, as the real notifier's delivery records make it."""
        self.sent.setdefault(notification.id, (notification, channels))


@dataclass
class FakeState:
    entries: list[AuditEntry] = field(default_factory=list)

    def audit(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


@pytest.fixture
def services() -> Services:
    settings = Settings.from_environ(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "MLOPS_WORKSPACES": f"dev={WORKSPACE}"}
    )
    return Services(settings=settings, state=FakeState(), work_queue=None,  # type: ignore[arg-type]
                    _platform=FakePlatform(), _notifier=FakeNotifier(),  # type: ignore[arg-type]
                    _policy=parse_policy(POLICY))


def breach_event(signal: str = "credit-risk-monitor_data_drift", run_id: str = "4b7c3a51-step", **change: Any) -> dict:
    raw = copy.deepcopy(json.loads(SIGNAL_EVENT.read_text())[0])
    raw["topic"] = WORKSPACE
    data = raw["data"]
    data["runTags"][BREACH_TAG] = data["runTags"][BREACH_TAG].replace("credit-risk-monitor_data_drift", signal)
    data.update(runId=run_id, **change)
    raw["id"] = f"event-{run_id}"
    return raw


def run_the_step(services: Services, raw: dict, status: JobStatus = JobStatus.FAILED) -> None:
    """The step run as the platform holds it: the tags the event copied."""
    data = raw["data"]
    services.platform.jobs[data["runId"]] = Job(  # type: ignore[attr-defined]
        workspace="dev", name=data["runId"], status=status, experiment=data["experimentName"],
        tags=dict(data["runTags"]), studio_url=f"https://ml.azure.com/runs/{data['runId']}",
    )


def outcomes(services: Services) -> list[tuple[str, str]]:
    return [(entry.outcome, entry.reason) for entry in services.state.entries]  # type: ignore[attr-defined]


def test_a_watched_signal_breach_starts_one_retraining_and_tells_ops_which_signals_breached(
    services: Services,
) -> None:
    raw = breach_event()
    run_the_step(services, raw)
    react(parse_event(raw), services)

    job_name = retrain_job_name("credit-risk", MONITORING_RUN)
    [(workspace, name, pipeline, inputs, tags)] = services.platform.submitted  # type: ignore[attr-defined]
    assert (workspace, name, pipeline, inputs) == ("dev", job_name, "retrain-model", {"dataset": "credit-risk-train"})
    assert tags == {"mlops.purpose": "retrain", "mlops.rule": "credit-risk", "mlops.monitoring_run": MONITORING_RUN,
                    "mlops.signals": "credit-risk-monitor_data_drift"}
    [(notification, channels)] = services.notifier.sent.values()  # type: ignore[attr-defined]
    assert channels == ["teams"] and notification.kind == "retraining.started"
    assert "credit-risk-monitor_data_drift" in notification.title
    assert dict(notification.facts)["breached signals"] == "credit-risk-monitor_data_drift"
    assert dict(notification.facts)["retraining job"] == job_name
    assert notification.table is not None and notification.table.rows == (
        ("credit-risk-monitor_data_drift", "age", "NormalizedWassersteinDistance", "0.4217", "0.1"),
        ("credit-risk-monitor_data_drift", "income", "NormalizedWassersteinDistance", "0.3105", "0.1"),
    )
    assert notification.link == "https://ml.azure.com/runs/4b7c3a51-step"
    assert outcomes(services)[-1][0] == "retraining"


def test_every_signal_and_every_duplicate_of_one_monitoring_run_leads_to_the_same_retraining(
    services: Services,
) -> None:
    drift = breach_event()
    prediction = breach_event("credit-risk-monitor_prediction_drift", run_id="9e8d7c6b-step")
    for raw in (drift, prediction):
        run_the_step(services, raw)
    for raw in (drift, drift, prediction, drift):
        react(parse_event(raw), services)

    names = {name for _, name, _, _, _ in services.platform.submitted}  # type: ignore[attr-defined]
    assert names == {retrain_job_name("credit-risk", MONITORING_RUN)}
    told = sorted(dict(n.facts)["breached signals"] for n, _ in services.notifier.sent.values())  # type: ignore
    assert told == ["credit-risk-monitor_data_drift", "credit-risk-monitor_prediction_drift"]


def test_another_monitoring_run_is_another_retraining(services: Services) -> None:
    first = breach_event()
    later = breach_event(run_id="later-step", runProperties={"azureml.pipelinerunid": "next-monitoring-run"})
    for raw in (first, later):
        run_the_step(services, raw)
        react(parse_event(raw), services)
    names = [name for _, name, _, _, _ in services.platform.submitted]  # type: ignore[attr-defined]
    assert names == [retrain_job_name("credit-risk", run) for run in (MONITORING_RUN, "next-monitoring-run")]


@pytest.mark.parametrize("signal", ["credit-risk-monitor_data_quality", "fraud-monitor_data_drift"])
def test_a_breach_no_rule_watches_is_ignored_with_the_signals(services: Services, signal: str) -> None:
    raw = breach_event(signal)
    run_the_step(services, raw)
    react(parse_event(raw), services)
    assert services.platform.submitted == []  # type: ignore[attr-defined]
    assert services.notifier.sent == {}  # type: ignore[attr-defined]
    assert outcomes(services) == [("ignored", f"no rule watches the model monitor signals ['{signal}']")]


def test_the_run_is_re_read_and_a_run_that_no_longer_reports_a_breach_starts_nothing(services: Services) -> None:
    raw = breach_event()
    run_the_step(services, raw)
    services.platform.jobs["4b7c3a51-step"].tags.clear()  # type: ignore[attr-defined]
    react(parse_event(raw), services)
    assert services.platform.submitted == []  # type: ignore[attr-defined]
    assert outcomes(services) == [("ignored", "run 4b7c3a51-step no longer reports a model monitor breach")]


def test_a_failed_run_without_a_breach_is_still_a_failed_job_for_ops(services: Services) -> None:
    """The monitoring pipeline's own run: a step's run without a breach is left to its pipeline's event
    (tests/unit/test_run_events.py)."""
    raw = breach_event()
    raw["data"]["runTags"] = {}
    raw["data"]["runProperties"] = {}
    run_the_step(services, raw)
    react(parse_event(raw), services)
    assert services.platform.submitted == []  # type: ignore[attr-defined]
    [(notification, _)] = services.notifier.sent.values()  # type: ignore[attr-defined]
    assert notification.kind == "job.failed"


def test_v1_dataset_drift_over_the_threshold_still_retrains(services: Services) -> None:
    raw = json.loads((FIXTURES / "aml-events/docs_eventgrid_schema/dataset_drift_detected.json").read_text())[0]
    raw["topic"] = WORKSPACE
    raw["data"]["DataDriftName"] = "credit-risk-weekly"
    react(parse_event(raw), services)
    [(_, name, pipeline, _, tags)] = services.platform.submitted  # type: ignore[attr-defined]
    assert (name, pipeline) == (retrain_job_name("credit-risk", raw["data"]["RunId"]), "retrain-model")
    assert tags["mlops.drift_run"] == raw["data"]["RunId"]
