"""A self-check of the Event Grid filters that bring Azure ML's run events to the app.

The subscriptions of infra/modules/aml-events.bicep filter RunStatusChanged on advanced-filter keys
written `data.RunStatus` and `data.RunTags.<tag>`, as the Azure ML model-monitoring docs write them
(MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-monitor-model-performance.md), while the
payload's fields are `runStatus` and `runTags` (the Event Grid schema of Azure ML events). The Event Grid
docs say string values compare case-insensitively and say nothing about keys: no public source settles
whether `data.RunStatus` finds `runStatus`. If it does not, those subscriptions deliver nothing and
failed runs reach the app only through the resync. So, once per process, the app reads each watched
workspace's subscriptions (REST `SystemTopicEventSubscriptions_ListBySystemTopic`, Azure/azure-rest-api-specs
specification/eventgrid/resource-manager/Microsoft.EventGrid/stable/2025-02-15) and warns about every key
whose case differs from the payload's, or that names no field of it, naming the subscription.

The system topic is the one infra makes for each workspace, `evgst-<workspace>` in the workspace's resource
group (infra/main.bicep); the app reads it as Reader of that topic (aml-events.bicep). A topic it cannot
read is a warning too: the check then says it could not check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.domain.ports import PlatformError

EVENT_GRID_API_VERSION = "2025-02-15"
RUN_EVENTS = ("Microsoft.MachineLearningServices.RunStatusChanged", "Microsoft.MachineLearningServices.RunCompleted")
# The data fields of Azure ML's run events (Event Grid schema docs, event-schema-machine-learning.md).
RUN_EVENT_FIELDS = ("experimentId", "experimentName", "runId", "runType", "runTags", "runProperties", "runStatus")
ENVELOPE_FIELDS = ("id", "topic", "subject", "eventType", "eventTime", "dataVersion", "metadataVersion")
TOPIC_PREFIX = "evgst-"  # infra/main.bicep: systemTopicName: 'evgst-${ws.workspace}'

Call = Callable[[str], Mapping[str, Any]]


def key_problem(key: str) -> str | None:
    """What is wrong with an advanced-filter key for run events: None when it names a payload field exactly."""
    head, _, rest = key.partition(".")
    if head.lower() == "data":
        if head != "data":
            return f"key {key!r}: 'data' differs in case from the envelope's 'data'"
        fields, name = RUN_EVENT_FIELDS, rest.split(".", 1)[0]
    else:
        fields, name = ENVELOPE_FIELDS, head
    if name in fields:
        return None
    same = [field for field in fields if field.lower() == name.lower()]
    if same:
        return (f"key {key!r} differs in case from the payload's {same[0]!r}: if Event Grid compares keys with "
                "their case, this subscription delivers nothing")
    return f"key {key!r} names no field of the run events' payload: this subscription delivers nothing"


def filter_warnings(subscriptions: Iterable[Mapping[str, Any]]) -> list[str]:
    """A warning per advanced-filter key of a run-event subscription that may not match the payload."""
    warnings = []
    for subscription in subscriptions:
        found = (subscription.get("properties") or {}).get("filter") or {}
        types = found.get("includedEventTypes") or []
        if types and not any(kind in RUN_EVENTS for kind in types):
            continue
        for advanced in found.get("advancedFilters") or []:
            problem = key_problem(str(advanced.get("key", "")))
            if problem:
                warnings.append(f"Event Grid subscription {subscription.get('name', '?')}: {problem}")
    return warnings


def topic_subscriptions_url(arm_url: str, workspace_id: str) -> str:
    """The list of the event subscriptions of the workspace's system topic, as infra names it."""
    parts = workspace_id.strip("/").split("/")
    subscription, group, workspace = parts[1], parts[3], parts[-1]
    return (f"{arm_url.rstrip('/')}/subscriptions/{subscription}/resourceGroups/{group}/providers/"
            f"Microsoft.EventGrid/systemTopics/{TOPIC_PREFIX}{workspace}/eventSubscriptions"
            f"?api-version={EVENT_GRID_API_VERSION}")


def check_workspace(call: Call, arm_url: str, workspace: str, workspace_id: str) -> list[str]:
    """The warnings about one workspace's run-event filters; a warning if they could not be read."""
    url: str | None = topic_subscriptions_url(arm_url, workspace_id)
    subscriptions: list[Mapping[str, Any]] = []
    try:
        while url:
            page = call(url)
            subscriptions += page.get("value") or []
            url = page.get("nextLink")
    except PlatformError as error:
        return [f"workspace {workspace}: could not read its Event Grid filters to check them: {error}"]
    return [f"workspace {workspace}: {warning}" for warning in filter_warnings(subscriptions)]


_checked = threading.Event()
log = logging.getLogger(__name__)


def warn_once(platform: object) -> list[str]:
    """Run the check the first time a process asks (a platform without it has nothing to check), logging each
    warning; later calls do nothing. Never raises: a check that fails is itself a warning."""
    check = getattr(platform, "event_filter_warnings", None)
    if check is None or _checked.is_set():
        return []
    _checked.set()
    try:
        warnings: list[str] = check()
    except Exception as error:  # the check must not stop the work it runs before
        warnings = [f"could not check the Event Grid filters: {type(error).__name__}: {error}"]
    for warning in warnings:
        log.warning("%s (docs/fidelity.md, 'Filter-key casing')", warning)
    return warnings
