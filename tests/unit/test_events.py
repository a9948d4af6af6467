"""Parsing Azure ML events of both schemas into typed models."""

from __future__ import annotations

import copy
import json
import re

import pytest

from shared.domain.events import (
    AML_EVENT_TYPES,
    BREACH_TAG,
    BreachedMetric,
    DriftData,
    EventKind,
    MalformedEvent,
    ModelDeployedData,
    ModelRegisteredData,
    RunData,
    UnknownEventType,
    dedupe_key,
    monitor_breach,
    parse_breach_message,
    parse_event,
)
from tests.conftest import FIXTURES

EVENTS = FIXTURES / "aml-events"


def fixture(schema: str, name: str) -> dict:
    loaded = json.loads((EVENTS / schema / f"{name}.json").read_text())
    return loaded[0] if isinstance(loaded, list) else loaded


@pytest.mark.parametrize("schema", ["docs_eventgrid_schema", "specs_cloudevents"])
def test_model_registered_fixture_parses_in_both_schemas(schema: str) -> None:
    event = parse_event(fixture(schema, "model_registered"))
    assert event.kind is EventKind.MODEL_REGISTERED
    assert event.schema_name == ("eventgrid" if schema.startswith("docs") else "cloudevents")
    assert isinstance(event.data, ModelRegisteredData)
    assert (event.data.model_name, event.data.model_version) == ("sklearn_regression_model", "20")
    assert event.data.model_tags == {"area": "diabetes", "type": "regression"}
    assert event.workspace.name == "{workspace-name}"
    assert event.subject == "models/sklearn_regression_model:20"
    assert event.time is not None and event.time.year == 2017


@pytest.mark.parametrize("schema", ["docs_eventgrid_schema", "specs_cloudevents"])
def test_model_deployed_fixture_splits_model_ids(schema: str) -> None:
    data = parse_event(fixture(schema, "model_deployed")).data
    assert isinstance(data, ModelDeployedData)
    assert data.service_name == "my-sklearn-service"
    assert data.model_ids == ["sklearn_regression_model:1", "sklearn_regression_model:2"]


@pytest.mark.parametrize("schema", ["docs_eventgrid_schema", "specs_cloudevents"])
def test_drift_fixture_has_a_float_coefficient(schema: str) -> None:
    data = parse_event(fixture(schema, "dataset_drift_detected")).data
    assert isinstance(data, DriftData)
    assert data.drift_coefficient == pytest.approx(0.8350349068479208)
    assert data.data_drift_name == "myDriftMonitor"


def test_run_completed_fixture_has_null_run_type_and_no_status() -> None:
    event = parse_event(fixture("docs_eventgrid_schema", "run_completed"))
    assert isinstance(event.data, RunData)
    assert event.kind is EventKind.RUN_COMPLETED
    assert event.data.run_type is None
    assert event.data.run_id == "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"
    assert event.data.experiment_name == "automl-local-regression"
    assert event.data.run_status is None


def test_run_status_is_lower_cased() -> None:
    raw = fixture("docs_eventgrid_schema", "run_status_changed")
    raw["data"]["runStatus"] = "FAILED"
    data = parse_event(raw).data
    assert isinstance(data, RunData) and data.run_status == "failed"


def test_data_keys_match_whatever_their_case_even_mixed_in_one_event() -> None:
    raw = fixture("docs_eventgrid_schema", "model_registered")
    raw["data"] = {"modelName": "churn", "MODELVERSION": "7", "ModelTags": None}
    data = parse_event(raw).data
    assert isinstance(data, ModelRegisteredData)
    assert (data.model_name, data.model_version, data.model_tags) == ("churn", "7", {})


def test_workspace_comes_from_the_topic() -> None:
    raw = fixture("docs_eventgrid_schema", "model_registered")
    raw["topic"] = (
        "/subscriptions/1111/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/mlw-dev"
    )
    workspace = parse_event(raw).workspace
    assert (workspace.subscription, workspace.resource_group, workspace.name) == ("1111", "rg-ml", "mlw-dev")


def test_the_same_event_in_both_schemas_has_one_dedupe_key() -> None:
    grid = parse_event(fixture("docs_eventgrid_schema", "model_registered"))
    cloud = parse_event(fixture("specs_cloudevents", "model_registered"))
    other = parse_event(fixture("docs_eventgrid_schema", "model_deployed"))
    assert grid.dedupe_key == cloud.dedupe_key != other.dedupe_key


def test_all_five_event_types_are_handled() -> None:
    assert len(AML_EVENT_TYPES) == 5
    assert all(kind.startswith("Microsoft.MachineLearningServices.") for kind in AML_EVENT_TYPES)


def _broken(change) -> dict:
    raw = copy.deepcopy(fixture("docs_eventgrid_schema", "model_registered"))
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_broken(lambda e: e.pop("data")), "'data' must be a JSON object"),
        (_broken(lambda e: e["data"].update(ModelVersion=[1])), "data.modelVersion"),
        (_broken(lambda e: e["data"].pop("ModelName")), "data.modelName: Field required"),
        (_broken(lambda e: e["data"].update(ModelName="../etc")), "not a valid Azure ML name"),
        (_broken(lambda e: e.update(topic="/subscriptions/x/resourceGroups/y")), "not an Azure ML workspace"),
        (_broken(lambda e: e.pop("eventType")), "missing event type 'eventtype'"),
        (_broken(lambda e: e.update(id=5)), "'id'"),
        (_broken(lambda e: e["data"].update(Blob="x" * 2_000_000)), "over Event Grid's limit"),
        ("just a string", "must be a JSON object"),
    ],
)
def test_malformed_events_are_rejected_with_what_and_where(raw: object, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_event(raw)


def _nested(depth: int) -> dict:
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value  # type: ignore[return-value]


def _deployed(change) -> dict:
    raw = copy.deepcopy(fixture("docs_eventgrid_schema", "model_deployed"))
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_broken(lambda e: e.update(id="evt-\ud800")), "'id' is not valid Unicode"),
        (_broken(lambda e: e.update(subject="models/\udfff")), "'subject' is not valid Unicode"),
        (_broken(lambda e: e["data"]["ModelTags"].update(note="a\ud83d")), "'data.ModelTags.note' is not valid"),
        (_broken(lambda e: e["data"]["ModelTags"].update({"\ud800": "x"})), "a key in 'data.ModelTags'"),
        (_broken(lambda e: e.update(id="evt\x00-1")), "'id' contains a control character"),
        (_broken(lambda e: e.update(subject="models/a\x1b[31m:1")), "'subject' contains a control character"),
        (_broken(lambda e: e.update(subject=7)), "'subject' must be a string"),
        (_broken(lambda e: e.update(id="x" * 1025)), "'id' is 1025 characters"),
        (_deployed(lambda e: e["data"].update(ServiceName="svc\u0085")), "data.serviceName"),
        (_deployed(lambda e: e["data"].update(ModelIds="a:1,b\x00:2")), "data.modelIds"),
        (_broken(lambda e: e["data"].update(ModelTags=_nested(40))), "nested more than 32 levels"),
        (_broken(lambda e: e["data"].update(ModelTags=_nested(2000))), "nested more than 32 levels"),
    ],
)
def test_ids_with_invalid_unicode_or_control_characters_are_rejected_with_the_field(raw: dict, message: str) -> None:
    with pytest.raises(MalformedEvent, match=re.escape(message)):
        parse_event(raw)
    assert dedupe_key(raw), "an event that is rejected still has a ledger key to be kept under"


def test_a_drift_coefficient_must_be_a_finite_number() -> None:
    for value in (float("inf"), float("nan")):
        raw = copy.deepcopy(fixture("docs_eventgrid_schema", "dataset_drift_detected"))
        raw["data"]["DriftCoefficient"] = value
        with pytest.raises(MalformedEvent, match=r"data\.driftCoefficient"):
            parse_event(raw)


def test_free_text_keeps_its_line_breaks_and_non_ascii() -> None:
    raw = _broken(lambda e: e["data"]["ModelTags"].update(note="première ligne\nsecond line 🚀"))
    assert parse_event(raw).data.model_tags["note"] == "première ligne\nsecond line 🚀"


def test_an_unknown_type_is_reported_as_unknown_not_malformed() -> None:
    raw = _broken(lambda e: e.update(eventType="Microsoft.Storage.BlobCreated"))
    with pytest.raises(UnknownEventType, match="not an Azure ML event"):
        parse_event(raw)
    raw = _broken(lambda e: e.update(eventType="Microsoft.MachineLearningServices.RunFailedSomehow"))
    with pytest.raises(UnknownEventType, match="not handled"):
        parse_event(raw)


# -- model monitoring (v2) breaches: fixtures composed from public sources, see
#    tests/fixtures/aml-events/composed_model_monitoring/SOURCES.md ------------------------------------------

MONITORING = "composed_model_monitoring"


def test_a_signal_breach_is_read_from_the_run_tag_with_its_metrics() -> None:
    event = parse_event(fixture(MONITORING, "run_status_changed_signal_breached"))
    assert event.kind is EventKind.RUN_STATUS_CHANGED and isinstance(event.data, RunData)
    assert event.data.run_status == "failed"
    breach = event.data.breach()
    assert breach is not None
    assert breach.run_id == "4b7c3a51-6f2e-4a0c-9d58-2f0d1c7e9a01"
    assert breach.monitoring_run_id == "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"  # runProperties.azureml.pipelinerunid
    assert breach.signal_names == ["credit-risk-monitor_data_drift"]
    assert breach.signals[0].metrics == (
        BreachedMetric(group="age", metric="NormalizedWassersteinDistance", value=0.4217, threshold=0.1),
        BreachedMetric(group="income", metric="NormalizedWassersteinDistance", value=0.3105, threshold=0.1),
    )


def test_the_root_runs_per_signal_tag_reports_the_breach_too() -> None:
    """`azureml.modelmonitor.threshold.breached.<signal>` on the root run (azureml-assets event_utils.py)."""
    data = parse_event(fixture(MONITORING, "run_status_changed_monitor_root_breached")).data
    assert isinstance(data, RunData)
    breach = data.breach()
    assert breach is not None
    assert breach.monitoring_run_id == breach.run_id == "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
    assert breach.signal_names == ["credit-risk-monitor_data_drift"]
    assert [m.group for m in breach.signals[0].metrics] == ["age", "income"]


def test_runs_without_the_breach_tag_report_no_breach() -> None:
    data = parse_event(fixture("docs_eventgrid_schema", "run_status_changed")).data
    assert isinstance(data, RunData) and data.breach() is None
    assert monitor_breach("r1", {BREACH_TAG: "something else went wrong"}, {}) is None


def test_the_breach_tag_is_found_whatever_its_case_and_the_root_run_tag_names_the_monitoring_run() -> None:
    message = "The signal 'm_data_quality' has failed due to one or more features violating metric thresholds.\n"
    breach = monitor_breach("step-1", {BREACH_TAG.upper(): message, "mlflow.rootRunId": "root-1"}, {})
    assert breach is not None
    assert (breach.monitoring_run_id, breach.signal_names, breach.signals[0].metrics) == (
        "root-1", ["m_data_quality"], ()
    )


def test_unreadable_metric_rows_are_skipped_not_fatal() -> None:
    message = (
        "The signal 's' has failed due to one or more features violating metric thresholds.\n"
        "The feature names and their corresponding computed metric values violating the threshold are \n"
        "['{\"group\":\"a\",\"metric_value\":\"NaN?\",\"metric_name\":\"NullValueRate\",\"threshold_value\":0}',"
        " '{not json}', '{\"group\":\"b\"}']\n"
    )
    [signal] = parse_breach_message(message)
    assert signal.metrics == (BreachedMetric(group="a", metric="NullValueRate", value=None, threshold=0.0),)
