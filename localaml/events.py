"""Azure ML events as Event Grid delivers them, and their delivery to subscribers.

The local service publishes the events a real workspace does, in the Event Grid schema
and casing of the public samples (`tests/fixtures/aml-events/docs_eventgrid_schema/`,
from the Azure ML Event Grid schema docs), by POSTing a JSON array to each subscriber
URL with `aeg-event-type: Notification`, from a background thread, as Event Grid
delivers after the operation. Like Event Grid it retries 5xx answers and connection
errors a few times; unlike it, it then gives up (logged): the app's resync finds
whatever an event failed to announce.

Its subscribers are answered as a workspace's Event Grid system topic lists them (REST
`SystemTopicEventSubscriptions_ListBySystemTopic`, Azure/azure-rest-api-specs specification/eventgrid/
resource-manager/Microsoft.EventGrid/stable/2025-02-15; the topic named `evgst-<workspace>` as
infra/main.bicep names it): one webhook subscription per subscriber URL, every event type, no
advanced filters, since this publisher filters nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply, arm_error

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

PREFIX = "Microsoft.MachineLearningServices."
NAMESPACE = uuid.UUID("6f1c1f0e-4d4a-4a58-9a47-5d7f3f0c2b11")

Event = dict[str, Any]
log = logging.getLogger(__name__)
TOPIC_SUBSCRIPTIONS = (r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)/providers/"
                       r"Microsoft\.EventGrid/systemTopics/evgst-(?P<workspace>[A-Za-z0-9][A-Za-z0-9_-]{0,254})"
                       r"/eventSubscriptions$")


def install(service: LocalAzureML) -> None:
    service.route("GET", TOPIC_SUBSCRIPTIONS, lambda **kw: topic_subscriptions(service, **kw))


def topic_subscriptions(
    service: LocalAzureML, subscription: str, group: str, workspace: str, query: dict[str, str], body: Any,
    headers: dict[str, str],
) -> Reply:
    """The subscriptions of a workspace's system topic: the publisher's subscriber URLs, unfiltered."""
    topic = f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.EventGrid/systemTopics/" \
            f"evgst-{workspace}"
    workspace_id = service.workspace_id(workspace).lower()
    if workspace_id not in service.resources or not workspace_id.startswith(topic.split("/providers/")[0].lower()):
        return arm_error(404, "ResourceNotFound", f"The Resource 'Microsoft.EventGrid/systemTopics/evgst-{workspace}' "
                         f"under resource group '{group}' was not found.")
    value = [
        {"id": f"{topic}/eventSubscriptions/local-{index}", "name": f"local-{index}",
         "type": "Microsoft.EventGrid/systemTopics/eventSubscriptions",
         "properties": {"provisioningState": "Succeeded", "eventDeliverySchema": "EventGridSchema",
                        "destination": {"endpointType": "WebHook", "properties": {"endpointBaseUrl": url}},
                        "filter": {"subjectBeginsWith": "", "subjectEndsWith": "", "advancedFilters": []}}}
        for index, url in enumerate(service.events.urls)
    ]
    return Reply(200, {"value": value})


def topic(workspace: str) -> str:
    """The workspace's ARM id, as Event Grid names a workspace topic."""
    from localaml.service import LocalAzureML

    return LocalAzureML.workspace_id(workspace)


def stable_id(*parts: str) -> str:
    """A deterministic uuid for ids that Azure ML makes up (experiments, monitors)."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _event(workspace: str, kind: str, subject: str, data: dict[str, Any]) -> Event:
    return {
        "topic": topic(workspace),
        "subject": subject,
        "eventType": PREFIX + kind,
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "id": str(uuid.uuid4()),
        "data": data,
        "dataVersion": "",
        "metadataVersion": "1",
    }


def model_registered(workspace: str, name: str, version: str, tags: dict[str, str]) -> Event:
    return _event(
        workspace,
        "ModelRegistered",
        f"models/{name}:{version}",
        {
            "ModelName": name,
            "ModelVersion": int(version) if version.isdigit() else version,
            "ModelTags": dict(tags),
            "ModelProperties": {},
        },
    )


def run_finished(job: dict[str, Any]) -> list[Event]:
    """What a finished job raises: RunCompleted when it completed, RunStatusChanged (runStatus `Failed`) when
    it failed, and nothing when it was canceled.

    RunStatusChanged events "only trigger when the run status is failed" (MicrosoftDocs/azure-ai-docs,
    articles/machine-learning/how-to-use-event-grid.md, "Filter & subscribe to events"), so a canceled run
    raises no event: whoever watches runs finds a canceled one by reading it (the app's resync does).
    """
    data: dict[str, Any] = {
        "experimentId": job["experiment_id"],
        "experimentName": job["experiment"],
        "runId": job["name"],
        "runType": "azureml.PipelineRun",
        "runTags": dict(job.get("tags") or {}),
        "runProperties": dict(job.get("properties") or {}),
    }
    if job["status"] == "canceled":
        return []
    kind = "RunCompleted"
    if job["status"] != "completed":
        kind = "RunStatusChanged"
        data["runStatus"] = job["status"].capitalize()
    return [_event(job["workspace"], kind, f"experiments/{job['experiment_id']}/runs/{job['name']}", data)]


def step_failed(workspace: str, experiment_id: str, experiment: str, run_id: str, pipeline_run_id: str,
                node: str) -> Event:
    """RunStatusChanged of a pipeline step's run that failed: step runs raise their own events.

    The shape is the "Pipeline Step Run" event of Azure-Samples/azure-machine-learning-pipeline-observability-sample
    (README.md): `runType` `azureml.StepRun`, the pipeline run named by the tag `azureml.pipelinerunid` and the
    node by `azureml.nodeid` (tags and properties), `azureml.runsource` `azureml.StepRun`. That sample shows a step's
    `Completed` as RunStatusChanged too; the docs now say RunStatusChanged fires only for failed runs
    (how-to-use-event-grid.md), so only a failed step raises one here. Whether a completed step raises
    RunCompleted no public source shows: none is raised.
    """
    lineage = {"azureml.pipelinerunid": pipeline_run_id, "azureml.nodeid": node}
    return _run_failed(workspace, experiment_id, experiment, run_id, "azureml.StepRun", lineage,
                       {"azureml.runsource": "azureml.StepRun", **lineage})


def drift_detected(workspace: str, monitor: str, coefficient: float) -> Event:
    drift_id = stable_id(workspace, "datadrift", monitor)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    run_id = f"{drift_id}_{int(time.time() * 1000)}"
    return _event(
        workspace,
        "DatasetDriftDetected",
        f"datadrift/{drift_id}/run/{run_id}",
        {
            "DataDriftId": drift_id,
            "DataDriftName": monitor,
            "RunId": run_id,
            "BaseDatasetId": stable_id(workspace, "dataset", monitor, "base"),
            "TargetDatasetId": stable_id(workspace, "dataset", monitor, "target"),
            "DriftCoefficient": coefficient,
            "StartTime": (end - timedelta(days=1)).isoformat(),
            "EndTime": end.isoformat(),
        },
    )


class EventPublisher:
    """POSTs events to the subscriber URLs from a background thread; never raises."""

    def __init__(self, urls: list[str] | None = None, attempts: int = 4, backoff_seconds: float = 0.25,
                 timeout: float = 30) -> None:
        self.urls = list(urls or [])
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.timeout = timeout
        self.published: list[Event] = []

    def publish(self, *events: Event) -> None:
        """Deliver the events as one batch to every subscriber, after the caller's answer has gone. No events,
        no delivery: Event Grid delivers events, by default one at a time in an array of one
        (https://learn.microsoft.com/azure/event-grid/delivery-and-retry), never an empty array; a canceled job,
        which raises none, once sent `[]`, which the Functions host's webhook refuses."""
        if not events:
            return
        self.published.extend(events)
        for url in self.urls:
            threading.Thread(target=self.deliver, args=(url, *events), name="event-grid", daemon=True).start()

    def deliver(self, url: str, *events: Event) -> bool:
        """Deliver the events as one batch to `url`; True once it accepted them."""
        described = ", ".join(f"{event['eventType'].removeprefix(PREFIX)} {event['subject']}" for event in events)
        import requests

        for attempt in range(1, self.attempts + 1):
            try:
                response = requests.post(
                    url, json=list(events), headers={"aeg-event-type": "Notification"}, timeout=self.timeout
                )
            except requests.RequestException as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 300:
                    log.info("published %s", described)
                    return True
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code not in (408, 429):
                    log.error("the webhook rejected %s (%s); not retried", described, problem)
                    return False
            log.warning("publishing %s failed (attempt %d/%d): %s", described, attempt, self.attempts, problem)
            if attempt < self.attempts:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        log.error("gave up publishing %s", described)
        return False


def monitor_breached(
    workspace: str, experiment_id: str, experiment: str, run_id: str, tags: dict[str, str],
    properties: dict[str, str],
) -> Event:
    """RunStatusChanged of a model monitor's signal run that breached its thresholds (status `Failed`).

    The run's tags carry `azureml_modelmonitor_threshold_breached` (Azure/azureml-assets,
    assets/model_monitoring/components/src/model_monitor_evaluate_metrics_threshold/evaluate_metrics_threshold.py),
    which the docs' Event Grid filter matches (MicrosoftDocs/azure-ai-docs,
    articles/machine-learning/how-to-monitor-model-performance.md); the shape and casing are those of the
    RunStatusChanged sample of the Event Grid schema docs, `runType` null as there.
    """
    return _run_failed(workspace, experiment_id, experiment, run_id, None, tags, properties)


def _run_failed(workspace: str, experiment_id: str, experiment: str, run_id: str, run_type: str | None,
                tags: dict[str, str], properties: dict[str, str]) -> Event:
    """RunStatusChanged of a run that failed, in the casing of the Event Grid schema docs' sample."""
    return _event(workspace, "RunStatusChanged", f"experiments/{experiment_id}/runs/{run_id}", {
        "experimentId": experiment_id, "experimentName": experiment, "runId": run_id, "runType": run_type,
        "runTags": dict(tags), "runProperties": dict(properties), "runStatus": "Failed",
    })
