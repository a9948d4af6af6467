"""Azure Monitor metrics of online deployments, from the requests the deployments served.

`GET <resource>/providers/Microsoft.Insights/metrics` (REST "Metrics - List", api-version 2023-10-01)
answers `RequestsPerMinute` (split by the `envoy_response_code` dimension when `$filter` asks for it),
`RequestLatency_P95` and `RequestLatency_P99` ("Monitor online endpoints", Azure ML docs, metrics at
deployment scope) over `timespan` in buckets of `interval`, from a log of each deployment's requests
that the endpoints module writes through `record_request`. Tests may set `service.monitor_series`
(metric name -> timeseries) instead; a deployment with logged requests is answered from its log.

With a `$filter`, Azure returns at most `top` series: "The maximum number of records to retrieve.
Valid only if $filter is specified. Defaults to 10." (Metrics - List, parameter `top`). Which series
are kept is ordered by `orderby`; without it the series with the largest totals are kept here (the
docs do not say Azure's default order).

A metric name the resource type does not have is refused as Azure Monitor refuses it: 400, body
`{"code": "BadRequest", "message": "Failed to find metric configuration for provider: <provider>, resource
Type: <type>, metric: <name>, Valid metrics: <names, comma separated>"}` (answers quoted in
Azure/azure-sdk-for-net#29584 and Azure/azure-libraries-for-java#688), never a 200 with an empty series.
A deployment's metric names are the generated reference's (MicrosoftDocs/azure-monitor-docs, "Supported
metrics for Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments", ms.date 04/16/2025).
Names are compared without regard to case; no public source settles whether Azure does.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply, arm_error

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
DIMENSION = "envoy_response_code"
DEFAULT_TOP = 10
DURATION = re.compile(r"^PT(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?$")
DIMENSION_FILTER = re.compile(rf"{DIMENSION}\s+eq\s+'(?P<value>[^']*)'", re.IGNORECASE)
PERCENTILES = {"RequestLatency_P50": 50.0, "RequestLatency_P90": 90.0, "RequestLatency_P95": 95.0,
               "RequestLatency_P99": 99.0}
# A deployment's metrics, in the reference's order (see the module docstring); those the request log cannot
# give (instance and data collection metrics) are answered with points without values.
DEPLOYMENT_METRICS = (
    "CpuMemoryUtilizationPercentage", "CpuUtilizationPercentage", "DataCollectionErrorsPerMinute",
    "DataCollectionEventsPerMinute", "DeploymentCapacity", "DiskUtilization", "GpuEnergyJoules",
    "GpuMemoryUtilizationPercentage", "GpuUtilizationPercentage", "RequestLatency_P50", "RequestLatency_P90",
    "RequestLatency_P95", "RequestLatency_P99", "RequestsPerMinute",
)
DEPLOYMENT = re.compile(r"/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+/onlineEndpoints/[^/]+"
                        r"/deployments/[^/]+$", re.IGNORECASE)
Entry = tuple[float, int, float]  # (unix time, HTTP status, latency in ms)


def install(service: LocalAzureML) -> None:
    service.route("GET", r"^(?P<resource>/subscriptions/.+)/providers/Microsoft\.Insights/metrics$",
                  lambda **kw: monitor(service, **kw))


def record_request(service: LocalAzureML, deployment_id: str, status: int, latency_ms: float,
                   at: float | None = None) -> None:
    """Log one scoring request served by the deployment `deployment_id` (its ARM id, any case)."""
    with service.lock:
        log: dict[str, list[Entry]] | None = getattr(service, "request_log", None)
        if log is None:
            log = {}
            service.request_log = log  # type: ignore[attr-defined]  # made on first use, see the module docstring
        log.setdefault(deployment_id.lower(), []).append((time.time() if at is None else at, status, latency_ms))


def monitor(
    service: LocalAzureML, resource: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    names = [name for name in query.get("metricnames", "").split(",") if name]
    unknown = _unknown(resource, names)
    if unknown is not None:
        return unknown
    aggregations = [a.strip().lower() for a in query.get("aggregation", "Average").split(",") if a.strip()]
    log = getattr(service, "request_log", {}).get(resource.lower())
    if log is not None:
        try:
            start, end = _timespan(query.get("timespan", ""))
            step = _duration(query.get("interval", "PT1M"))
        except ValueError as error:
            return arm_error(400, "BadRequest", str(error))
        split = DIMENSION_FILTER.search(query.get("$filter", ""))
        series = {name: _from_log(log, name, start, end, step, aggregations, split) for name in names}
    else:
        series = {name: list(service.monitor_series.get(name, [])) for name in names}
    if "$filter" in query:
        top = int(query.get("top", DEFAULT_TOP))
        series = {name: _top(found, top, aggregations[0] if aggregations else "average")
                  for name, found in series.items()}
    value = [
        {
            "id": f"{resource}/providers/Microsoft.Insights/metrics/{name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": name, "localizedValue": name},
            "unit": "Count" if name == "RequestsPerMinute" else "Milliseconds",
            "timeseries": series[name],
            "errorCode": "Success",
        }
        for name in names
    ]
    return Reply(
        200,
        {"cost": 0, "timespan": query.get("timespan", ""), "interval": query.get("interval", "PT1M"),
         "value": value, "namespace": NAMESPACE, "resourceregion": "eastus"},
    )


def _unknown(resource: str, names: list[str]) -> Reply | None:
    """Monitor's 400 for the first name a deployment has no metric of (None when all are known)."""
    if not DEPLOYMENT.search(resource):
        return None  # other resource types: their metric sets are not modelled here
    known = {name.lower() for name in DEPLOYMENT_METRICS}
    for name in names:
        if name.strip().lower() not in known:
            return Reply(400, {"code": "BadRequest", "message": (
                f"Failed to find metric configuration for provider: Microsoft.MachineLearningServices, resource "
                f"Type: workspaces/onlineEndpoints/deployments, metric: {name}, Valid metrics: "
                f"{','.join(DEPLOYMENT_METRICS)}")})
    return None


def _from_log(
    log: list[Entry], metric: str, start: float, end: float, step: float, aggregations: list[str],
    split: re.Match[str] | None,
) -> list[dict[str, Any]]:
    """The metric's timeseries from the request log: one, or one per response code when split."""
    entries = [entry for entry in log if start <= entry[0] < end]
    if metric == "RequestsPerMinute" and split is not None:
        codes = sorted({str(status) for _, status, _ in entries})
        if split["value"] != "*":
            codes = [code for code in codes if code == split["value"]]
        return [
            {"metadatavalues": [{"name": {"value": DIMENSION, "localizedValue": DIMENSION}, "value": code}],
             "data": _points([e for e in entries if str(e[1]) == code], metric, start, end, step, aggregations)}
            for code in codes
        ]
    return [{"metadatavalues": [], "data": _points(entries, metric, start, end, step, aggregations)}]


def _points(
    entries: list[Entry], metric: str, start: float, end: float, step: float, aggregations: list[str]
) -> list[dict[str, Any]]:
    """One data point per interval: the aggregations of the metric's per-minute values in it."""
    per_minute: dict[int, list[Entry]] = defaultdict(list)
    for entry in entries:
        per_minute[int((entry[0] - start) // 60)].append(entry)
    points = []
    moment = start
    while moment < end:
        minutes = range(int((moment - start) // 60), int((min(moment + step, end) - start + 59) // 60))
        values = [_minute_value(metric, per_minute.get(minute, [])) for minute in minutes]
        present = [value for value in values if value is not None]
        point: dict[str, Any] = {"timeStamp": datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if present:
            aggregated = {"average": sum(present) / len(present), "total": sum(present), "count": len(present),
                          "maximum": max(present), "minimum": min(present)}
            point.update({name: aggregated[name] for name in aggregations if name in aggregated})
        points.append(point)
        moment += step
    return points


def _minute_value(metric: str, entries: list[Entry]) -> float | None:
    """RequestsPerMinute counts the minute's requests (0 without any); latencies have no value then."""
    if metric == "RequestsPerMinute":
        return float(len(entries))
    if metric in PERCENTILES and entries:
        return _percentile(sorted(latency for _, _, latency in entries), PERCENTILES[metric])
    return None


def _percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return values[max(0, math.ceil(percent / 100 * len(values)) - 1)]


def _top(series: list[dict[str, Any]], top: int, aggregation: str) -> list[dict[str, Any]]:
    def size(item: dict[str, Any]) -> float:
        return sum(point.get(aggregation) or 0.0 for point in item.get("data", []))

    return sorted(series, key=size, reverse=True)[:top]


def _timespan(value: str) -> tuple[float, float]:
    try:
        first, _, second = value.partition("/")
        start = datetime.fromisoformat(first.replace("Z", "+00:00"))
        end = datetime.fromisoformat(second.replace("Z", "+00:00")) if second else datetime.now(UTC)
    except ValueError:
        raise ValueError(f"timespan {value!r} is not 'startDateTime_ISO/endDateTime_ISO'") from None
    return start.timestamp(), end.timestamp()


def _duration(value: str) -> float:
    match = DURATION.match(value)
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"interval {value!r} is not an ISO 8601 duration such as PT1M")
    seconds = timedelta(hours=int(match["h"] or 0), minutes=int(match["m"] or 0), seconds=int(match["s"] or 0))
    return max(60.0, seconds.total_seconds())
