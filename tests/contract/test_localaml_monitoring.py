"""The local service's model monitoring runs: the local-only control route records a monitor's run and
publishes the RunStatusChanged Azure would; the app's parser and the real azure-ai-ml read them back.

Sources: the breach tag and its text, Azure/azureml-assets
assets/model_monitoring/components/src/model_monitor_evaluate_metrics_threshold/evaluate_metrics_threshold.py;
the root run's per-signal tag, .../shared_utilities/event_utils.py there; status `Failed`, signals named
`<monitor>_<signal>` and the Event Grid filter text, MicrosoftDocs/azure-ai-docs,
articles/machine-learning/how-to-monitor-model-performance.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from localaml import monitoring
from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.events import (
    BREACH_TAG,
    BREACH_TEXT,
    PIPELINE_RUN_PROPERTY,
    ROOT_BREACH_TAG_PREFIX,
    BreachedMetric,
    EventKind,
    RunData,
    parse_event,
)
from shared.domain.ports import JobStatus
from tests.conftest import FIXTURES
from tests.contract.conftest import bearer

DEV = LocalAzureML.workspace_id("dev")
DRIFT = [
    {"feature": "age", "metric": "NormalizedWassersteinDistance", "value": 0.42, "threshold": 0.1},
    {"feature": "income", "metric": "JensenShannonDistance", "value": 0.05, "threshold": 0.1},
]
QUALITY = [{"feature": "age", "metric": "NullValueRate", "value": 0.0, "threshold": 0.01}]
COMPOSED = FIXTURES / "aml-events/composed_model_monitoring"


@pytest.fixture
def monitors(fake: LocalAzureML) -> LocalAzureML:
    """The service with its monitoring route; until `localaml.FEATURES` lists it, installed here."""
    if not any("/monitors/" in route.pattern.pattern for route in fake.routes):
        monitoring.install(fake)
    fake.events.published.clear()
    return fake


def run_monitor(service: LocalAzureML, body: Any, workspace: str = "dev", token: bool = True) -> requests.Response:
    headers = bearer(service) if token else {}
    url = f"{service.base_url}localaml/workspaces/{workspace}/monitors/credit-risk-monitor/runs"
    return requests.post(url, json=body, headers=headers, timeout=30)


def test_a_breached_signal_is_a_failed_run_with_the_breach_tag_and_its_run_status_changed_event(
    monitors: LocalAzureML,
) -> None:
    answer = run_monitor(monitors, {"signals": {"data_drift": DRIFT, "data_quality": QUALITY}})

    assert answer.status_code == 201, answer.text
    run = answer.json()
    assert run["breachedSignals"] == ["credit-risk-monitor_data_drift"]
    [published] = monitors.events.published
    event = parse_event(published)
    assert (event.kind, event.workspace.name) == (EventKind.RUN_STATUS_CHANGED, "dev")
    assert isinstance(event.data, RunData) and event.data.run_status == "failed"
    assert event.data.run_id == run["signalRunIds"][0]
    assert BREACH_TEXT in event.data.run_tags[BREACH_TAG]
    breach = event.data.breach()
    assert breach is not None and breach.monitoring_run_id == run["monitoringRunId"]
    assert breach.signal_names == ["credit-risk-monitor_data_drift"]
    assert breach.signals[0].metrics == (  # only the row over its threshold
        BreachedMetric(group="age", metric="NormalizedWassersteinDistance", value=0.42, threshold=0.1),
    )


def test_the_runs_are_jobs_the_real_sdk_reads_back(monitors: LocalAzureML, platform: AzureMLPlatform) -> None:
    run = run_monitor(monitors, {"signals": {"data_drift": DRIFT, "data_quality": QUALITY},
                                 "notification_emails": "ops@contoso.com"}).json()
    drift_step, quality_step = run["signalRunIds"]

    step = platform.get_job("dev", drift_step)
    assert step.status is JobStatus.FAILED and BREACH_TEXT in step.tags[BREACH_TAG]
    assert platform.get_job("dev", quality_step).status is JobStatus.COMPLETED
    assert BREACH_TAG not in platform.get_job("dev", quality_step).tags
    root = platform.get_job("dev", run["monitoringRunId"])
    assert root.status is JobStatus.FAILED
    # With notification emails, the root run carries the per-signal tag (event_utils.post_email_event).
    assert root.tags["azureml.notification.email.address"] == "ops@contoso.com"
    assert root.tags["azureml.modelmonitor.threshold.breached.credit-risk-monitor_data_drift"] == step.tags[BREACH_TAG]
    assert monitors.resources[f"{DEV}/jobs/{drift_step}".lower()]["properties"]["properties"] == {
        "azureml.pipelinerunid": run["monitoringRunId"]
    }


def test_metrics_that_should_stay_high_breach_below_their_threshold_and_rows_without_one_never(
    monitors: LocalAzureML,
) -> None:
    """`calculate_metrics_breach`: Accuracy, test statistics, pass rates breach below; rows with nulls are skipped."""
    performance = [
        {"feature": "model", "metric": "Accuracy", "value": 0.71, "threshold": 0.8},
        {"feature": "model", "metric": "MeanAbsoluteError", "value": 9.0, "threshold": None},
    ]
    run = run_monitor(monitors, {"signals": {"model_performance": performance}}).json()
    assert run["breachedSignals"] == ["credit-risk-monitor_model_performance"]
    [published] = monitors.events.published
    breach = parse_event(published).data.breach()  # type: ignore[union-attr]
    assert breach is not None and [m.metric for m in breach.signals[0].metrics] == ["Accuracy"]


def test_a_run_within_every_threshold_completes_and_publishes_nothing(monitors: LocalAzureML) -> None:
    run = run_monitor(monitors, {"signals": {"data_quality": QUALITY}}).json()
    assert run["breachedSignals"] == [] and monitors.events.published == []
    root = monitors.resources[f"{DEV}/jobs/{run['monitoringRunId']}".lower()]
    assert (root["properties"]["status"], root["properties"]["tags"]) == ("Completed", {})


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({}, "signals"),
        ({"signals": {"data_drift": "high"}}, "signals.data_drift"),
        ({"signals": {"data_drift": [{"feature": "age", "value": 1}]}}, "signals.data_drift[0]"),
        ({"signals": {"data_drift": [{"feature": "a", "metric": "m", "value": "1"}]}}, "signals.data_drift[0]"),
        ({"signals": {"data_drift": DRIFT}, "notification_emails": ["a@b.c"]}, "notification_emails"),
    ],
)
def test_a_malformed_run_is_refused_as_azure_ml_refuses_with_the_field(
    monitors: LocalAzureML, body: Any, target: str
) -> None:
    answer = run_monitor(monitors, body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "UserError" and error["details"][0]["target"] == target
    assert monitors.events.published == []


def test_an_unknown_workspace_is_not_found_and_a_caller_without_the_token_is_refused(monitors: LocalAzureML) -> None:
    missing = run_monitor(monitors, {"signals": {"data_drift": DRIFT}}, workspace="nope")
    assert (missing.status_code, missing.json()["error"]["details"][0]["code"]) == (404, "WorkspaceNotFound")
    anonymous = run_monitor(monitors, {"signals": {"data_drift": DRIFT}}, token=False)
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")
    assert monitors.events.published == []


def test_the_tags_are_those_of_the_samples_composed_from_azureml_assets_and_the_docs() -> None:
    """The service's wire constants and breach text, held to the public samples (their SOURCES.md), not to the app."""
    [step] = json.loads((COMPOSED / "run_status_changed_signal_breached.json").read_text(encoding="utf-8"))
    [root] = json.loads((COMPOSED / "run_status_changed_monitor_root_breached.json").read_text(encoding="utf-8"))
    signal = "credit-risk-monitor_data_drift"
    rows = [
        {"feature": "age", "metric": "NormalizedWassersteinDistance", "value": 0.4217, "threshold": 0.1},
        {"feature": "income", "metric": "NormalizedWassersteinDistance", "value": 0.3105, "threshold": 0.1},
    ]
    message = monitoring.breach_message(signal, rows)

    assert step["data"]["runTags"] == {monitoring.BREACH_TAG: message}
    assert monitoring.BREACH_TEXT in message
    assert list(step["data"]["runProperties"]) == [monitoring.PIPELINE_RUN_PROPERTY]
    assert root["data"]["runTags"] == {monitoring.EMAIL_TAG: "ops@contoso.com",
                                       monitoring.ROOT_BREACH_TAG_PREFIX + signal: message}


def test_the_app_reads_the_same_tags_the_service_writes() -> None:
    """Two sides, each from the public sources: were they ever to differ, the service's (Azure's) would be right."""
    app = (BREACH_TAG, BREACH_TEXT, ROOT_BREACH_TAG_PREFIX, PIPELINE_RUN_PROPERTY)
    assert app == (monitoring.BREACH_TAG, monitoring.BREACH_TEXT, monitoring.ROOT_BREACH_TAG_PREFIX,
                   monitoring.PIPELINE_RUN_PROPERTY)
