"""The sandbox's pure rules: traffic, metrics arithmetic, URIs, inputs, event shapes, publishing."""

from __future__ import annotations

import logging
import random
from collections import Counter

import pytest

from devhost.azurite import free_port
from shared.events import EventKind, parse_event
from shared.platform.port import TryLater
from shared.platform.sandbox import Rejected, events, faults, models, pipelines, scoring
from shared.platform.sandbox.endpoints import check_traffic
from shared.platform.sandbox.metrics import percentile

READY = {"blue": "Succeeded", "green": "Succeeded"}


@pytest.mark.parametrize(
    ("traffic", "mirror"),
    [
        ({"blue": 100}, {}),
        ({"blue": 90, "green": 10}, {}),
        ({"blue": 100, "green": 0}, {"green": 50}),
        ({}, {}),
        ({"blue": 0, "green": 0}, {"green": 0}),
    ],
)
def test_valid_traffic_is_accepted(traffic: dict[str, int], mirror: dict[str, int]) -> None:
    check_traffic(READY, traffic, mirror)


@pytest.mark.parametrize(
    ("traffic", "mirror", "reason"),
    [
        ({"blue": 90}, {}, "sum to 100"),
        ({"blue": 60, "green": 60}, {}, "sum to 100"),
        ({"blue": 100, "red": 0}, {}, "'red', which does not exist"),
        ({"blue": 100.0}, {}, "integer from 0 to 100"),
        ({"blue": True}, {}, "integer from 0 to 100"),
        ({"blue": 110, "green": -10}, {}, "integer from 0 to 100"),
        ({"blue": 100}, {"green": 51}, "at most 50%"),
        ({"blue": 90, "green": 10}, {"blue": 5}, "both live and mirror"),
        ({"blue": 100}, {"green": 10, "red": 0, "blue": 0}, "'red', which does not exist"),
        ({"blue": 100}, [], "must map deployment names"),
    ],
)
def test_invalid_traffic_is_rejected_with_the_reason(traffic, mirror, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        check_traffic(READY, traffic, mirror)


def test_mirror_traffic_goes_to_one_deployment_only() -> None:
    with pytest.raises(Rejected, match="only one deployment"):
        check_traffic({**READY, "red": "Succeeded"}, {"blue": 100}, {"green": 10, "red": 10})


def test_traffic_to_a_deployment_still_creating_is_refused_for_now() -> None:
    with pytest.raises(TryLater, match="Creating"):
        check_traffic({"blue": "Succeeded", "green": "Creating"}, {"blue": 90, "green": 10}, {})
    check_traffic({"blue": "Succeeded", "green": "Creating"}, {"blue": 100, "green": 0}, {})


def test_auc_is_the_probability_a_positive_outranks_a_negative() -> None:
    import numpy as np

    labels = np.array([0, 0, 1, 1])
    assert pipelines.auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert pipelines.auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert pipelines.auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert pipelines.auc(labels, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert pipelines.auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.95), percentile(values, 0.99), percentile(values, 1.0)) == (95.0, 99.0, 100.0)
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.95) is None


def test_model_uris_round_trip() -> None:
    for location in ("dev", "registry:shared"):
        uri = models.model_uri(location, "churn", "3")
        assert models.parse_uri(uri, "dev") == (location, "churn", "3")
    assert models.model_uri("registry:shared", "churn", "3") == "azureml://registries/shared/models/churn/versions/3"
    with pytest.raises(Rejected, match="is not azureml:"):
        models.parse_uri("https://example.com/churn", "dev")


def test_evaluation_inputs_name_a_model_and_a_dataset() -> None:
    assert pipelines.model_ref({"model_uri": "azureml:churn:2", "dataset": "d"}, "dev") == ("dev", "churn", "2")
    assert pipelines.model_ref({"model_name": "churn", "model_version": "2"}, "qa") == ("qa", "churn", "2")
    with pytest.raises(Rejected, match="needs input 'dataset'"):
        pipelines.check_inputs("evaluate-model", {"model_uri": "azureml:churn:2"})
    with pytest.raises(Rejected, match="map names to strings"):
        pipelines.check_inputs("retrain-model", {"dataset": "d", "epochs": 3})


def test_weighted_choice_follows_the_weights() -> None:
    rng = random.Random(1)
    drawn = Counter(scoring.choose({"blue": 75, "green": 25, "red": 0}, rng) for _ in range(4000))
    assert set(drawn) == {"blue", "green"}
    assert 2850 <= drawn["blue"] <= 3150
    assert scoring.choose({"blue": 0}, rng) is None


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([], "non-empty list"),
        ("1,2", "non-empty list"),
        ([[1.0, 2.0], [1.0]], r"inputs\[1\]"),
        ([[1.0, "2"]], "not a number"),
        ([[True, 1.0]], "not a number"),
        ([[]], r"inputs\[0\]"),
    ],
)
def test_scoring_inputs_are_checked(rows: object, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        scoring.as_rows(rows)


def test_published_events_parse_as_the_app_parses_azure_ml_events() -> None:
    job = {
        "workspace": "dev", "name": "test-churn-3", "pipeline": "evaluate-model", "experiment": "evaluate-model",
        "experiment_id": events.stable_id("dev", "experiment", "evaluate-model"), "tags": {"model": "churn:3"},
        "status": "failed",
    }
    registered = parse_event(events.model_registered("dev", "churn", "3", {"team": "risk"}))
    failed = parse_event(events.run_finished(job))
    completed = parse_event(events.run_finished({**job, "status": "completed"}))
    drift = parse_event(events.drift_detected("dev", "churn-inputs", 0.7))

    assert (registered.kind, registered.data.model_version) == (EventKind.MODEL_REGISTERED, "3")
    assert (failed.kind, failed.data.run_status, failed.data.run_tags) == (
        EventKind.RUN_STATUS_CHANGED, "failed", {"model": "churn:3"}
    )
    assert (completed.kind, completed.data.run_status) == (EventKind.RUN_COMPLETED, None)
    assert (drift.kind, drift.data.drift_coefficient) == (EventKind.DATASET_DRIFT_DETECTED, 0.7)
    assert {event.workspace.name for event in (registered, failed, completed, drift)} == {"dev"}


def test_without_a_url_events_are_logged_not_published(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.__name__)
    assert events.EventPublisher(None).publish(events.model_registered("dev", "churn", "1", {})) is False
    assert "MLOPS_SANDBOX_EVENTS_URL is unset" in caplog.text and "models/churn:1" in caplog.text


def test_an_unreachable_webhook_is_retried_then_given_up(caplog: pytest.LogCaptureFixture) -> None:
    publisher = events.EventPublisher(f"http://127.0.0.1:{free_port()}/hook", attempts=3, backoff_seconds=0.01)
    assert publisher.publish(events.model_registered("dev", "churn", "1", {})) is False
    assert "attempt 3/3" in caplog.text and "gave up" in caplog.text


def test_faults_can_be_injected_into_port_methods_only() -> None:
    assert {"get_model", "set_traffic", "submit_job", "get_deployment_metrics"} <= faults.PORT_METHODS
    assert "register_model" not in faults.PORT_METHODS


def test_the_sandbox_has_every_port_method_with_the_port_signature() -> None:
    import inspect

    from shared.platform.port import MLPlatform
    from shared.platform.sandbox import SandboxPlatform

    for name in faults.PORT_METHODS:
        port, sandbox = inspect.signature(getattr(MLPlatform, name)), inspect.signature(getattr(SandboxPlatform, name))
        assert list(sandbox.parameters) == list(port.parameters), name
        assert [p.default for p in sandbox.parameters.values()] == [p.default for p in port.parameters.values()], name
