"""Azure ML events: the Event Grid intake, the queue worker and its poison queue.

The app (`shared.bootstrap`, `shared.reactor`, the storage adapters) is imported inside the functions,
on their first call: a cold start indexes them without it (see docs/cold-start.md).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.bindings import WORK_QUEUE

if TYPE_CHECKING:
    from shared.adapters.storage.queue import WorkQueue
    from shared.adapters.storage.stores import Stores

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("aml_events")
@bp.event_grid_trigger(arg_name="event")
def aml_events(event: func.EventGridEvent) -> None:
    """Validate, de-duplicate, record and enqueue one Azure ML event."""
    from shared.bootstrap import services
    from shared.reactor import intake

    outcome = intake.receive(envelope(event), *intake_stores(), clock=services().clock)
    log.info("event %s: %s", event.id, outcome.value)


@functools.cache
def intake_stores() -> tuple[Stores, WorkQueue]:
    """Intake's own storage clients, built once: short timeouts, so an outage fails the delivery fast."""
    from shared.bootstrap import services
    from shared.reactor import intake

    return intake.fast_stores(services().settings)


@bp.function_name("aml_work")
@bp.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
def aml_work(msg: func.QueueMessage) -> None:
    """Run the reaction to one event; an exception makes the queue retry, then poison it."""
    from shared.bootstrap import services
    from shared.domain.work import WorkItem
    from shared.reactor import worker

    worker.process(WorkItem.model_validate_json(msg.get_body()), services(), attempt=msg.dequeue_count or 1)


@bp.function_name("aml_work_poison")
@bp.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE + "-poison", connection="AzureWebJobsStorage")
def aml_work_poison(msg: func.QueueMessage) -> None:
    """Record a work item that failed every attempt, so that it is visible and replayable."""
    from shared.bootstrap import services
    from shared.reactor import worker

    key = worker.dead_letter(msg.get_body(), msg.dequeue_count or 0, services())
    log.error("work item %s dead-lettered", key)


def envelope(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    """The event as delivered, rebuilt from the binding's object."""
    if isinstance(event, func.CloudEvent):
        return {
            "specversion": event.specversion, "id": event.id, "source": event.source, "type": event.type,
            "subject": event.subject, "time": event.time.isoformat() if event.time else None,
            "data": event.get_json(),
        }
    return {
        "id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
        "eventTime": event.event_time.isoformat() if event.event_time else None,
        "dataVersion": event.data_version, "data": event.get_json(),
    }
