"""Azure Monitor metrics REST for online deployments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from localaml.errors import Reply

if TYPE_CHECKING:
    from localaml.service import LocalAzureML


def install(service: LocalAzureML) -> None:
    service.route("GET", r"^(?P<resource>/subscriptions/.+)/providers/Microsoft\.Insights/metrics$",
                  lambda **kw: monitor(service, **kw))


def monitor(
    service: LocalAzureML, resource: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    names = query.get("metricnames", "").split(",")
    value = []
    for name in names:
        value.append(
            {
                "id": f"{resource}/providers/Microsoft.Insights/metrics/{name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": name, "localizedValue": name},
                "unit": "Count" if name == "RequestsPerMinute" else "Milliseconds",
                "timeseries": service.monitor_series.get(name, []),
                "errorCode": "Success",
            }
        )
    return Reply(
        200,
        {"cost": 0, "timespan": query.get("timespan", ""), "interval": query.get("interval", "PT1M"),
         "value": value, "namespace": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
         "resourceregion": "eastus"},
    )

