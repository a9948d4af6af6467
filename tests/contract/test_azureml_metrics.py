"""Deployment health from Azure Monitor as Azure answers it: at most `top` series (10 unless asked) when a `$filter`
is given ("Metrics - List" REST docs, parameter `top`), and metrics computed from the requests a deployment served."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest

from localaml.monitor import record_request
from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

DEV = LocalAzureML.workspace_id("dev")
GREEN = f"{DEV}/onlineEndpoints/churn-ep/deployments/green"
CODES = ["200", "201", "204", "400", "401", "403", "404", "408", "409", "413", "424", "429"]


@pytest.fixture(autouse=True)
def no_requests_logged(fake: LocalAzureML) -> None:
    """The `fake` fixture does not know the request log (yet): start each test without one."""
    if hasattr(fake, "request_log"):
        del fake.request_log


def _series(code: str, *values: float) -> dict:
    return {"metadatavalues": [{"name": {"value": "envoy_response_code"}, "value": code}],
            "data": [{"timeStamp": f"T{i}", "average": value} for i, value in enumerate(values)]}


def _metrics(fake: LocalAzureML, credential: TokenCredential, **query: str) -> dict:
    token = credential.get_token("https://management.azure.com/.default").token
    answer = fake.handle("GET", f"{GREEN}/providers/Microsoft.Insights/metrics?{urlencode(query)}", b"",
                         {"Authorization": f"Bearer {token}"})
    assert answer.status == 200, answer.body
    return json.loads(json.dumps(answer.body))


def test_a_filtered_query_returns_only_the_top_10_series_unless_asked(
    fake: LocalAzureML, credential: TokenCredential
) -> None:
    fake.monitor_series["RequestsPerMinute"] = [_series(code, 100 - i) for i, code in enumerate(CODES)]

    default = _metrics(fake, credential, metricnames="RequestsPerMinute", **{"$filter": "envoy_response_code eq '*'"})
    asked = _metrics(fake, credential, metricnames="RequestsPerMinute", top="50",
                     **{"$filter": "envoy_response_code eq '*'"})
    unfiltered = _metrics(fake, credential, metricnames="RequestsPerMinute")

    assert len(default["value"][0]["timeseries"]) == 10
    assert len(asked["value"][0]["timeseries"]) == 12
    assert len(unfiltered["value"][0]["timeseries"]) == 12, "top applies only with a $filter"


def test_no_5xx_series_is_dropped_when_a_deployment_answers_many_codes(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    fake.monitor_series["RequestsPerMinute"] = [_series(code, 100) for code in CODES] + [_series("503", 3, 2)]
    since = datetime.now(UTC) - timedelta(minutes=10)

    metrics = platform.get_deployment_metrics("dev", "churn-ep", "green", since)

    assert (metrics.requests, metrics.errors) == (1205, 5)
    [counts] = fake.requests_to("GET", r"/providers/Microsoft\.Insights/metrics$")[:1]
    assert int(counts.query["top"]) >= 1000


def test_metrics_come_from_the_requests_the_deployment_served(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    now = time.time()
    minute_ago = now - 90
    for latency in range(1, 101):  # 100 requests a minute and a half ago: P95 95 ms, P99 99 ms
        record_request(fake, GREEN, 200, float(latency), at=minute_ago)
    for _ in range(3):
        record_request(fake, GREEN, 503, 500.0, at=now - 30)
    record_request(fake, GREEN, 404, 5.0, at=now - 30)
    record_request(fake, GREEN, 503, 1.0, at=now - 3600)  # before the window
    record_request(fake, f"{DEV}/onlineEndpoints/churn-ep/deployments/blue", 500, 1.0, at=now - 30)

    metrics = platform.get_deployment_metrics("dev", "churn-ep", "green", datetime.now(UTC) - timedelta(minutes=5))

    assert (metrics.requests, metrics.errors) == (104, 3)
    assert metrics.latency_p95_ms == 500.0  # the worst minute: the last one, all slow
    assert metrics.latency_p99_ms == 500.0


def test_latency_percentiles_per_minute(fake: LocalAzureML, credential: TokenCredential) -> None:
    start = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    for latency in range(1, 101):
        record_request(fake, GREEN, 200, float(latency), at=start.timestamp() + 10)
    record_request(fake, GREEN, 200, 7.0, at=start.timestamp() + 70)

    answer = _metrics(fake, credential, metricnames="RequestLatency_P95,RequestLatency_P99,RequestsPerMinute",
                      timespan="2026-11-21T09:00:00Z/2026-11-21T09:03:00Z", interval="PT1M", aggregation="Average")

    by_name = {item["name"]["value"]: item["timeseries"][0]["data"] for item in answer["value"]}
    assert [point.get("average") for point in by_name["RequestLatency_P95"]] == [95.0, 7.0, None]
    assert [point.get("average") for point in by_name["RequestLatency_P99"]] == [99.0, 7.0, None]
    assert [point.get("average") for point in by_name["RequestsPerMinute"]] == [100.0, 1.0, 0.0]
    assert by_name["RequestsPerMinute"][0]["timeStamp"] == "2026-11-21T09:00:00Z"


def test_the_window_comes_back_minute_by_minute_for_comparing_two_deployments(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    """The port's series: requests, 5xx errors and each latency metric per minute, over the window asked
    (`until` fixes its end, so the canary and its champion are read over the same minutes)."""
    blue = f"{DEV}/onlineEndpoints/churn-ep/deployments/blue"
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=4)
    for minute, (count, errors, latency) in enumerate([(10, 0, 20.0), (20, 2, 30.0), (0, 0, 0.0), (5, 5, 40.0)]):
        for i in range(count):
            record_request(fake, GREEN, 503 if i < errors else 200, latency, at=start.timestamp() + minute * 60 + 5)
    record_request(fake, blue, 200, 10.0, at=start.timestamp() + 5)

    metrics = platform.get_deployment_metrics("dev", "churn-ep", "green", start, until=start + timedelta(minutes=4),
                                              metrics=["RequestLatency_P95"])
    other = platform.get_deployment_metrics("dev", "churn-ep", "blue", start, until=start + timedelta(minutes=4))

    assert metrics.minutes == [start + timedelta(minutes=i) for i in range(4)] == other.minutes
    assert metrics.requests_per_minute == [10, 20, 0, 5] and metrics.errors_per_minute == [0, 2, 0, 5]
    assert metrics.series["RequestLatency_P95"] == [20.0, 30.0, None, 40.0], "no latency in a minute without requests"
    assert (metrics.requests, metrics.errors, metrics.latency_p95_ms) == (35, 7, 40.0)
    assert other.requests_per_minute == [1, 0, 0, 0]
