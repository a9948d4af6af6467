"""Where the local service follows Azure by other public evidence than the recorded replays (issue 25, third pass):
each test names its source and failed against the service before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import ConfigurationError
from tests.contract.conftest import bearer

DEV = LocalAzureML.workspace_id("dev")
GREEN = f"{DEV}/onlineEndpoints/churn-ep/deployments/green"


def _metrics(fake: LocalAzureML, **query: str) -> tuple[int, dict]:
    answer = fake.handle("GET", f"{GREEN}/providers/Microsoft.Insights/metrics?{urlencode(query)}", b"", bearer(fake))
    return answer.status, json.loads(json.dumps(answer.body))


def test_an_unknown_metric_name_is_refused_in_monitors_words(fake: LocalAzureML) -> None:
    """Azure Monitor answers 400 BadRequest "Failed to find metric configuration for provider: ..., Valid metrics:
    ..." (Azure/azure-sdk-for-net#29584, Azure/azure-libraries-for-java#688); before, 200 with an empty series."""
    status, body = _metrics(fake, metricnames="RequestLatency_P95,RequestLatencyP99", aggregation="Average")

    assert status == 400
    assert body["code"] == "BadRequest"
    assert body["message"].startswith(
        "Failed to find metric configuration for provider: Microsoft.MachineLearningServices, resource Type: "
        "workspaces/onlineEndpoints/deployments, metric: RequestLatencyP99, Valid metrics: ")
    assert "RequestLatency_P99" in body["message"].split("Valid metrics: ")[1].split(",")


def test_every_metric_the_adapter_asks_for_is_a_real_one(fake: LocalAzureML) -> None:
    """The adapter's names are in the deployment's metric reference, in any case Monitor takes."""
    from shared.adapters.azureml.metrics import LATENCY_METRICS, REQUESTS_METRIC

    status, _ = _metrics(fake, metricnames=",".join((REQUESTS_METRIC, *LATENCY_METRICS)))
    lower, _ = _metrics(fake, metricnames="requestsperminute")

    assert (status, lower) == (200, 200)


def test_a_refused_metric_name_is_a_configuration_error_naming_the_metric(
    platform: AzureMLPlatform, fake: LocalAzureML, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt name fails loudly as configuration (no retry helps), quoting Monitor's message."""
    from shared.adapters.azureml import metrics

    monkeypatch.setattr(metrics, "LATENCY_METRICS", ("RequestLatency_P95", "RequestLatency_P999"))
    fake.add_online_endpoint("dev", "churn-ep", {"green": 100})
    fake.add_online_deployment("dev", "churn-ep", "green", f"{DEV}/models/churn/versions/1")

    with pytest.raises(ConfigurationError, match=r"Azure Monitor has no such metric .*metric: RequestLatency_P999"):
        platform.get_deployment_metrics("dev", "churn-ep", "green", datetime.now(UTC) - timedelta(minutes=5))


def test_a_batch_invoke_answers_a_job_id_path_polled_at_the_scoring_uri(fake: LocalAzureML) -> None:
    """Azure/azureml-examples cli/batch-score-rest.sh: the job is the last segment of the answer's `id`, read again at
    `{scoringUri}/{job}` with `properties.status` (before: a bare name as id and no GET there)."""
    endpoint = fake.add_batch_endpoint("dev", "score-batch")
    scoring = endpoint["properties"]["scoringUri"].removeprefix(fake.base_url.rstrip("/"))
    token = bearer(fake, "https://ml.azure.com")
    body = {"properties": {"InputData": {"input": {"JobInputType": "UriFolder", "Uri": "azureml://datastores/"
                                                   "workspaceblobstore/paths/in/"}}}}

    started = fake.handle("POST", scoring, json.dumps(body).encode(), token)
    job = started.body["id"].rsplit("/", 1)[-1]
    polled = fake.handle("GET", f"{scoring}/{job}", b"", token)
    missing = fake.handle("GET", f"{scoring}/batchjob-none", b"", token)

    assert started.status == 200 and started.body["id"].startswith(f"{endpoint['id']}/jobs/")
    assert job == started.body["name"]
    assert (polled.status, polled.body["name"], polled.body["properties"]["status"]) == (200, job, "NotStarted")
    assert missing.status == 404



def test_the_filter_self_check_reads_the_local_topics_unfiltered_subscriptions(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    """The local publisher filters nothing, and says so as a system topic's subscriptions
    (SystemTopicEventSubscriptions_ListBySystemTopic): the app's self-check finds nothing to warn about."""
    before = fake.events.urls
    fake.events.urls = ["https://127.0.0.1:7071/runtime/webhooks/eventgrid?functionName=aml_events"]
    try:
        warnings = platform.event_filter_warnings()
        missing = fake.handle("GET", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/systemTopics/"
                              "evgst-nowhere/eventSubscriptions", b"", bearer(fake))
    finally:
        fake.events.urls = before

    assert warnings == []
    assert [r.path.rsplit("/", 2)[-2] for r in fake.requests_to("GET", r"/eventSubscriptions$")][:2] == [
        "evgst-dev", "evgst-prod"]
    assert missing.status == 404
