"""Numbers `azure-ai-ml` does not give: job metrics and live deployment health, over REST.

Job metrics come from the workspace's MLflow tracking server (`runs/get` for the job,
`runs/search` for its child steps); deployment health from Azure Monitor metrics of
the online deployment. Both accept the same ARM bearer token the SDK uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.adapters.azureml.errors import from_status
from shared.domain.ports import DeploymentMetrics, Transient

MONITOR_API_VERSION = "2023-10-01"
DEPLOYMENT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
REQUESTS_METRIC = "RequestsPerMinute"  # dimension envoy_response_code
# Azure Monitor returns only `top` series when a $filter is given, 10 unless asked ("Metrics - List", parameter
# `top`: "Valid only if $filter is specified. Defaults to 10."): with more response codes than that, 5xx series
# could be dropped and errors undercounted. Asking for this many keeps every code a deployment can answer.
MAX_SERIES = 1000
LATENCY_METRICS = ("RequestLatency_P95", "RequestLatency_P99")  # milliseconds
MAX_CHILD_RUNS = 500
MAX_DEPTH = 3


class Rest:
    """JSON over HTTPS with the app's ARM token; answers become port errors."""

    def __init__(self, token: Callable[[], str], identity: str, timeout: float = 30.0) -> None:
        self._token = token
        self._identity = identity
        self._timeout = timeout
        self._session: Any = None

    def call(
        self, method: str, url: str, *, what: str, scope: str, params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        import requests

        if self._session is None:
            self._session = requests.Session()
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        try:
            response = self._session.request(
                method, url, params=params, json=body, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as error:
            raise Transient(f"could not reach {url} for {what}: {error}") from error
        if response.status_code >= 400:
            raise from_status(
                response.status_code, response.headers, response.text[:500],
                what=what, identity=self._identity, scope=scope,
            )
        return response.json() if response.content else {}


def tracking_url(mlflow_tracking_uri: str) -> str:
    """The REST base of a workspace's `azureml://<host>/mlflow/v1.0/...` tracking URI."""
    if not mlflow_tracking_uri.startswith("azureml://"):
        raise ValueError(f"not an Azure ML tracking URI: {mlflow_tracking_uri!r}")
    return "https://" + mlflow_tracking_uri.removeprefix("azureml://").rstrip("/")


def job_metrics(rest: Rest, base: str, job_name: str, *, scope: str) -> dict[str, float]:
    """The job's own metrics and its steps' (latest values).

    A step's metric appears as `<step>.<key>`, and also as `<key>` when neither the job
    nor an earlier step logged that key, so gates can name either.
    """
    what = f"MLflow run {job_name}"
    run = rest.call("GET", f"{base}/api/2.0/mlflow/runs/get", params={"run_id": job_name}, what=what, scope=scope)
    parent = run["run"]
    metrics = _latest(parent)
    experiment = parent["info"]["experiment_id"]
    for child in descendants(rest, base, experiment, job_name, scope=scope):
        step = child["info"].get("run_name") or child["info"]["run_id"]
        for key, value in _latest(child).items():
            metrics[f"{step}.{key}"] = value
            metrics.setdefault(key, value)
    return metrics


def descendants(rest: Rest, base: str, experiment: str, run_id: str, *, scope: str) -> list[dict[str, Any]]:
    """Child runs, breadth first (a pipeline's steps, and steps of nested pipelines), oldest first per level."""
    found: list[dict[str, Any]] = []
    level = [run_id]
    for _ in range(MAX_DEPTH):
        children: list[dict[str, Any]] = []
        for parent in level:
            children.extend(_children(rest, base, experiment, parent, scope=scope))
        children.sort(key=lambda run: run["info"].get("start_time") or 0)
        found.extend(children)
        level = [child["info"]["run_id"] for child in children]
        if not level or len(found) >= MAX_CHILD_RUNS:
            break
    return found[:MAX_CHILD_RUNS]


def _children(rest: Rest, base: str, experiment: str, parent: str, *, scope: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    token: str | None = None
    while len(runs) < MAX_CHILD_RUNS:
        body: dict[str, Any] = {
            "experiment_ids": [experiment],
            "filter": f"tags.mlflow.parentRunId = '{parent}'",
            "max_results": 100,
        }
        if token:
            body["page_token"] = token
        page = rest.call(
            "POST", f"{base}/api/2.0/mlflow/runs/search", body=body, what=f"steps of MLflow run {parent}", scope=scope
        )
        runs.extend(page.get("runs", []))
        token = page.get("next_page_token")
        if not token:
            break
    return runs


def _latest(run: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for item in run.get("data", {}).get("metrics", []):
        value = float(item["value"])
        if math.isfinite(value):
            metrics[item["key"]] = value
    return metrics


def deployment_metrics(
    rest: Rest, arm_url: str, resource_id: str, since: datetime, *, scope: str, now: datetime | None = None,
    metrics: Sequence[str] = (),
) -> DeploymentMetrics:
    """Requests, 5xx errors and worst-minute P95 / P99 latency of an online deployment since `since`, and
    the same minutes as series (requests, errors, and each latency metric and metric of `metrics`)."""
    end = now or datetime.now(UTC)
    start = since if since.tzinfo else since.replace(tzinfo=UTC)
    url = f"{arm_url.rstrip('/')}{resource_id}/providers/Microsoft.Insights/metrics"
    common = {
        "api-version": MONITOR_API_VERSION,
        "metricnamespace": DEPLOYMENT_NAMESPACE,
        "timespan": f"{_iso(start)}/{_iso(end)}",
        "interval": "PT1M",
        "aggregation": "Average",
    }
    what = f"Azure Monitor metrics of {resource_id}"
    counts = rest.call(
        "GET", url, what=what, scope=scope,
        params={**common, "metricnames": REQUESTS_METRIC, "$filter": "envoy_response_code eq '*'",
                "top": str(MAX_SERIES)},
    )
    names = [*LATENCY_METRICS, *(name for name in dict.fromkeys(metrics)
                                 if name not in LATENCY_METRICS and name != REQUESTS_METRIC)]
    values = rest.call("GET", url, what=what, scope=scope, params={**common, "metricnames": ",".join(names)})
    requests_per: dict[str, float] = {}
    errors_per: dict[str, float] = {}
    for series in _series(counts, REQUESTS_METRIC):
        server_error = _dimension(series, "envoy_response_code").startswith("5")
        for point in series.get("data", []):
            stamp = point.get("timeStamp", "")
            requests_per[stamp] = requests_per.get(stamp, 0.0) + (point.get("average") or 0.0)
            if server_error:
                errors_per[stamp] = errors_per.get(stamp, 0.0) + (point.get("average") or 0.0)
    per_metric = {name: _per_minute(values, name) for name in names}
    stamps = sorted(stamp for stamp in {*requests_per, *(stamp for found in per_metric.values() for stamp in found)}
                    if _parse(stamp) is not None)
    p95, p99 = (_worst(values, name) for name in LATENCY_METRICS)
    return DeploymentMetrics(
        requests=round(sum(requests_per.values())), errors=round(sum(errors_per.values())),
        latency_p95_ms=p95, latency_p99_ms=p99, window_start=start,
        minutes=[moment for moment in map(_parse, stamps) if moment is not None],
        requests_per_minute=[requests_per.get(stamp, 0.0) for stamp in stamps],
        errors_per_minute=[errors_per.get(stamp, 0.0) for stamp in stamps],
        series={name: [found.get(stamp) for stamp in stamps] for name, found in per_metric.items()},
    )


def _per_minute(answer: dict[str, Any], metric: str) -> dict[str, float]:
    """The metric's minutes that have a value, by time stamp (a metric without dimensions has one series)."""
    return {point["timeStamp"]: float(point["average"])
            for series in _series(answer, metric) for point in series.get("data", [])
            if point.get("average") is not None and point.get("timeStamp")}


def _parse(stamp: str) -> datetime | None:
    """A point's `timeStamp` (ISO 8601, UTC); None for one that is not, left out of the series."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _series(answer: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    for item in answer.get("value", []):
        if item.get("name", {}).get("value", "").lower() == metric.lower():
            return item.get("timeseries", [])
    return []


def _dimension(series: dict[str, Any], name: str) -> str:
    for item in series.get("metadatavalues", []):
        if item.get("name", {}).get("value", "").lower() == name.lower():
            return str(item.get("value", ""))
    return ""


def _worst(answer: dict[str, Any], metric: str) -> float | None:
    values = [
        point["average"]
        for series in _series(answer, metric)
        for point in series.get("data", [])
        if point.get("average") is not None
    ]
    return max(values) if values else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
