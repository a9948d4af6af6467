"""Model monitoring (v2) runs: a local control route that plays a monitor's scheduled run.

Azure ML runs a model monitor as a pipeline job on its schedule; each signal's step evaluates the
signal's metrics against their thresholds and, when any is breached, tags its run with
`azureml_modelmonitor_threshold_breached` (Azure/azureml-assets,
assets/model_monitoring/components/src/model_monitor_evaluate_metrics_threshold/evaluate_metrics_threshold.py).
The workspace then publishes that run's `RunStatusChanged`, which the docs filter on that tag
(MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-monitor-model-performance.md: status
`Failed`, signals named `<monitor>_<signal>`).

There is no Azure REST call to run a monitor on demand, so the route here is local-only: a test or a
demo gives the metric values a run computed, and the service records the runs and publishes the events
Azure would. It publishes only the breached signals' RunStatusChanged; the other status changes of the
monitoring pipeline (Running, Completed...) are not published.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply, user_error
from localaml.events import monitor_breached, stable_id

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

# The tag a signal's step puts on its own run when a metric breaches: `send_email_for_breached` in
# Azure/azureml-assets, assets/model_monitoring/components/src/model_monitor_evaluate_metrics_threshold/
# evaluate_metrics_threshold.py (`add_tags_to_run(_get_run_id(), {"azureml_modelmonitor_threshold_breached":
# error_message})`); the key the docs' Event Grid filter names, `data.RunTags.azureml_modelmonitor_threshold_breached`
# (MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-monitor-model-performance.md).
BREACH_TAG = "azureml_modelmonitor_threshold_breached"
# The words of that tag's text after the signal's name: `_generate_error_message` in the same file; the docs'
# filter value ("String contains" this text) in the same article.
BREACH_TEXT = "has failed due to one or more features violating metric thresholds"
# With notification emails, the step also tags the root run: `post_email_event` in Azure/azureml-assets,
# assets/model_monitoring/components/src/shared_utilities/event_utils.py (`mlflow.set_tag(
# f"azureml.modelmonitor.threshold.breached.{signal_name}", message)` and `AML_SEND_EMAIL_ADDRESSES_TAG`).
ROOT_BREACH_TAG_PREFIX = "azureml.modelmonitor.threshold.breached."
EMAIL_TAG = "azureml.notification.email.address"
# A pipeline step's run names its pipeline run in this run property: Azure/azureml-assets components read it
# so (assets/large_language_models/rag/components/src/flow_creation.py: `run_properties["azureml.pipelinerunid"]`).
PIPELINE_RUN_PROPERTY = "azureml.pipelinerunid"
# Metrics whose value should stay above the threshold; every other metric breaches above it
# (`Metric_Value_Should_Greater_Than_Threshold` in evaluate_metrics_threshold.py, names from
# assets/model_monitoring/components/src/shared_utilities/constants.py in Azure/azureml-assets).
HIGHER_IS_BETTER = frozenset({
    "TwoSampleKolmogorovSmirnovTest", "PearsonsChiSquaredTest", "NormalizedDiscountedCumulativeGain",
    "AggregatedCoherencePassRate", "AggregatedGroundednessPassRate", "AggregatedFluencyPassRate",
    "AggregatedSimilarityPassRate", "AggregatedRelevancePassRate", "Accuracy", "Precision", "Recall",
})
NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}"


def install(service: LocalAzureML) -> None:
    service.route(
        "POST", rf"^/localaml/workspaces/(?P<workspace>{NAME})/monitors/(?P<monitor>{NAME})/runs$",
        lambda **kw: run_monitor(service, **kw),
    )


def run_monitor(
    service: LocalAzureML, workspace: str, monitor: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """Local-only (no Azure counterpart): record one run of `monitor` and publish what Azure would.

    Body: `{"signals": {"<signal>": [{"feature": "age", "metric": "JensenShannonDistance", "value": 0.4,
    "threshold": 0.1}, ...]}, "notification_emails": "ops@contoso.com"}` (emails optional). Each signal
    is named `<monitor>_<signal>`, as the docs name them. Answers 201 with the monitoring run, its
    signals' runs and the breached signals.
    """
    signals = _signals(body)
    emails = body.get("notification_emails") if isinstance(body, dict) else None
    if emails is not None and not isinstance(emails, str):
        raise user_error("notification_emails must be a string", "InvalidNotificationEmails",
                         target="notification_emails")
    workspace_id = service.workspace_id(workspace)
    if workspace_id.lower() not in service.resources:
        raise user_error(f"Workspace {workspace} not found", "WorkspaceNotFound", status=404, target="workspace")
    experiment_id = stable_id(workspace, "monitor", monitor)
    root_id = str(uuid.uuid4())
    root_tags: dict[str, str] = {}
    steps, breached, events = [], [], []
    for signal, rows in signals.items():
        name = f"{monitor}_{signal}"
        over = [row for row in rows if _breached(row)]
        step_id = str(uuid.uuid4())
        tags = {BREACH_TAG: breach_message(name, over)} if over else {}
        if over and emails:
            root_tags |= {EMAIL_TAG: emails, ROOT_BREACH_TAG_PREFIX + name: tags[BREACH_TAG]}
        properties = {PIPELINE_RUN_PROPERTY: root_id}
        _record_job(service, workspace_id, step_id, monitor, "Failed" if over else "Completed", tags, properties)
        _record_run(service, experiment_id, step_id, signal, "FAILED" if over else "FINISHED", tags, parent=root_id)
        steps.append(step_id)
        if over:
            breached.append(name)
            events.append(monitor_breached(workspace, experiment_id, monitor, step_id, tags, properties))
    _record_job(service, workspace_id, root_id, monitor, "Failed" if breached else "Completed", root_tags, {})
    _record_run(service, experiment_id, root_id, monitor, "FAILED" if breached else "FINISHED", root_tags)
    if events:
        service.events.publish(*events)
    return Reply(201, {"monitoringRunId": root_id, "signalRunIds": steps, "breachedSignals": breached})


def breach_message(signal: str, rows: list[dict[str, Any]]) -> str:
    """The tag's text, as `_generate_error_message` builds it: Spark JSON rows in a Python list's repr."""
    listing = [
        json.dumps({"group": row["feature"], "metric_value": row["value"], "metric_name": row["metric"],
                    "threshold_value": row["threshold"]}, separators=(",", ":"))
        for row in rows
    ]
    return (
        f"The signal '{signal}' {BREACH_TEXT}.\n"
        "The feature names and their corresponding computed metric values violating "
        f"the threshold are \n{listing}\n"
    )


def _breached(row: dict[str, Any]) -> bool:
    """`calculate_metrics_breach`: rows without a value or a threshold are never breached."""
    value, threshold = row["value"], row["threshold"]
    if value is None or threshold is None:
        return False
    return value < threshold if row["metric"] in HIGHER_IS_BETTER else value > threshold


def _signals(body: Any) -> dict[str, list[dict[str, Any]]]:
    signals = body.get("signals") if isinstance(body, dict) else None
    if not isinstance(signals, dict) or not signals:
        raise user_error("signals must map signal names to their metric rows", "InvalidSignals", target="signals")
    checked: dict[str, list[dict[str, Any]]] = {}
    for signal, rows in signals.items():
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise user_error(f"signals.{signal} must be a list of metric rows", "InvalidSignals",
                             target=f"signals.{signal}")
        checked[signal] = [_row(signal, index, row) for index, row in enumerate(rows)]
    return checked


def _row(signal: str, index: int, row: dict[str, Any]) -> dict[str, Any]:
    where = f"signals.{signal}[{index}]"
    if not isinstance(row.get("feature"), str) or not isinstance(row.get("metric"), str):
        raise user_error(f"{where} needs a feature and a metric name", "InvalidSignals", target=where)
    for key in ("value", "threshold"):
        number = row.get(key)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)
                                   or not math.isfinite(number)):
            raise user_error(f"{where}.{key} must be a finite number or null", "InvalidSignals", target=where)
    return {"feature": row["feature"], "metric": row["metric"], "value": row.get("value"),
            "threshold": row.get("threshold")}


def _record_job(
    service: LocalAzureML, workspace_id: str, run_id: str, monitor: str, status: str, tags: dict[str, str],
    properties: dict[str, str],
) -> None:
    """The run as a workspace job (`GET .../jobs/<run id>` answers it).

    Recorded as a pipeline job, a shape the SDK reads without components; a signal's breaching step is a
    Spark step in Azure (the signal components' spec.yaml in Azure/azureml-assets). Status, tags and
    `azureml.pipelinerunid` are what the app reads.
    """
    service.add(
        f"{workspace_id}/jobs/{run_id}",
        {"jobType": "Pipeline", "status": status, "experimentName": monitor, "displayName": run_id,
         "tags": tags, "properties": properties, "isArchived": False, "jobs": {}, "inputs": {}, "outputs": {},
         "services": {"Studio": {"endpoint": service.studio_url(f"{workspace_id}/jobs/{run_id}")}}},
    )


def _record_run(
    service: LocalAzureML, experiment_id: str, run_id: str, name: str, status: str, tags: dict[str, str],
    parent: str | None = None,
) -> None:
    """The run's MLflow side: the components set the breach tags through MLflow (event_utils.py), and
    clients read a finished job's metrics there; a step's run names the monitoring run as its parent and root."""
    from localaml import mlflow

    root = {"mlflow.rootRunId": parent} if parent else {}
    mlflow.new_run(service, run_id, experiment_id, name, parent=parent, tags={**tags, **root}, status="RUNNING")
    mlflow.set_status(service, run_id, status)
