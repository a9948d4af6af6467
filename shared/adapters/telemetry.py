"""Traces, metrics and decision logs to Application Insights, only where it is configured.

With `APPLICATIONINSIGHTS_CONNECTION_STRING` set, the first use of this module configures the
Azure Monitor OpenTelemetry distro (`azure-monitor-opentelemetry`) once per process: spans,
metrics and log records then go to Application Insights (with the identity named by
`APPLICATIONINSIGHTS_AUTHENTICATION_STRING`, as the infra sets it). Without the setting nothing
of OpenTelemetry is imported and every helper here returns at its first line.

One trace follows an event: `intake` (Event Grid delivery) -> the work item's `traceparent` ->
`react` (queue worker) -> a span per platform call (`platform.<method>`, see `traced_platform`)
and per notification channel (`notify.<channel>`). Scoring ranges carry the submitter's
`traceparent` the same way (`score.range`). Storage queues carry no trace context of their own,
so the item does: `carry` writes it, `span(parent=...)` reads it.

Spans carry the dimensions `aml.event_id`, `aml.model`, `aml.version`, `aml.rule`, `aml.endpoint`
and `aml.decision`. Decisions are taken from the audit trail (`audited`, called by the state
store for every entry) and from the rollout history the engine writes (`rollout_progress`): each
is a structured log record on the `aml_reactor.decisions` logger with those dimensions, a span
event, and a count in the metrics below.

Metrics (meter `aml_reactor`): `aml_reactor.events` (type, outcome), `aml_reactor.decisions`
(kind, outcome), `aml_reactor.rollout.steps` (endpoint, action), `aml_reactor.rollout.weight`
(endpoint, deployment; gauge, percent), `aml_reactor.analyses` (endpoint, result),
`aml_reactor.rollbacks` (endpoint, model), `aml_reactor.event_lag` (type; seconds from the
event's time to the end of its reaction), `aml_reactor.scoring.rows_per_second` (per range).

Nothing secret goes out: attributes are names and ids; a failed span records the exception's
type only (a notification channel's error may quote its webhook URL), and the HTTP client
instrumentations that would export full URLs (requests, urllib, urllib3) stay off.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.domain.records import AuditEntry, HistoryAction, Rollout, RolloutEntry

if TYPE_CHECKING:
    from shared.domain.ports import MLPlatform

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
TRACEPARENT = "traceparent"
DECISION_LOGGER = "aml_reactor.decisions"
ROLLOUT_KIND = "rollout"  # the decision kind of rollout history entries
STEPS = (HistoryAction.START, HistoryAction.STEP, HistoryAction.MIRROR, HistoryAction.SUCCEEDED,
         HistoryAction.ROLLED_BACK)
"""The history entries counted as rollout steps."""
TRAFFIC_SET = (HistoryAction.STEP, HistoryAction.MIRROR, HistoryAction.ROLLED_BACK)
"""The history entries that put traffic on the new deployment (or took it off): its weight."""
# Web frameworks the app does not use, and HTTP clients whose spans would carry full URLs (a Slack or
# Teams webhook URL is itself a secret); the Azure SDK's spans (storage, Azure ML) stay on.
DISABLED_INSTRUMENTATIONS = ("django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")
# The distro's default detectors include azure_vm, which probes the instance metadata endpoint at start-up:
# pointless on Functions, and a wait on every cold start outside Azure.
RESOURCE_DETECTORS = "azure_app_service,azure_functions"
SAMPLER = "microsoft.fixed_percentage"
MODEL_SUBJECT = re.compile(r"^(?:models/)?(?P<model>[^/:]+):(?P<version>[^/:]+)$")

log = logging.getLogger(__name__)
_UNSET: Any = object()
_state: Any = _UNSET  # _Otel once configured, None when off, _UNSET before the first look
_lock = threading.Lock()


class _NoSpan:
    """What `span` yields when telemetry is off: accepts attributes, keeps nothing."""

    def set(self, **attributes: object) -> None:
        return None


NO_SPAN = _NoSpan()


def enabled() -> bool:
    """Whether telemetry is on in this process (configuring it on the first call that finds the setting)."""
    return _otel() is not None


def _otel() -> _Otel | None:
    global _state
    if _state is _UNSET:
        with _lock:
            if _state is _UNSET:
                _state = _configure_or_none() if os.environ.get(CONNECTION_SETTING) else None
    return _state


def _configure_or_none() -> _Otel | None:
    """Telemetry never stops the app: a setting the distro refuses leaves it off, said once in the log."""
    try:
        return _configure()
    except Exception as error:
        log.error("telemetry is off: Application Insights could not be configured (%s)", type(error).__name__)
        return None


@contextlib.contextmanager
def span(name: str, *, parent: str | None = None, kind: str = "internal", **attributes: object) -> Iterator[Any]:
    """A span around the block, child of the current span or of `parent` (a W3C `traceparent`).

    Attributes named without a dot get the `aml.` prefix; None values are left out. The block
    may add more with `.set(name=value)` on what it gets. A no-op when telemetry is off.
    """
    otel = _otel()
    if otel is None:
        yield NO_SPAN
        return
    with otel.span(name, parent, kind, attributes) as handle:
        yield handle


def scoring_range(item: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
    """The `score.range` span of a queued range, in the trace of the job's submission."""
    return span("score.range", parent=item.get(TRACEPARENT), kind="consumer", job=item.get("job"),
                range=item.get("range"))


def traceparent() -> str | None:
    """The current trace context (W3C `traceparent`) for a message to carry; None when telemetry is off."""
    otel = _otel()
    return otel.traceparent() if otel is not None else None


def carry(item: dict[str, Any]) -> dict[str, Any]:
    """`item` with the current trace context as its `traceparent` field (unchanged when telemetry is off)."""
    current = traceparent()
    return {**item, TRACEPARENT: current} if current else item


def traced_platform(platform: MLPlatform) -> MLPlatform:
    """The platform port with a span around every call; the port itself when telemetry is off."""
    if _otel() is None:
        return platform
    return _TracedPlatform(platform)


def count_event(event_type: str, outcome: str) -> None:
    """One event at intake, by type and outcome (queued, duplicate, ignored, rejected)."""
    otel = _otel()
    if otel is not None:
        otel.events.add(1, {"aml.event_type": event_type or "unknown", "aml.outcome": outcome})


def reacted(event_type: str, event_time: datetime | None) -> None:
    """The reaction to an event ended: record the lag from the event's time."""
    otel = _otel()
    if otel is None or event_time is None:
        return
    moment = event_time if event_time.tzinfo else event_time.replace(tzinfo=UTC)
    lag = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    otel.event_lag.record(lag, {"aml.event_type": event_type})
    otel.current_set({"aml.event_lag_seconds": round(lag, 3)})


def audited(entry: AuditEntry) -> None:
    """An audit entry was written: a decision log record, a span event and the decision count."""
    otel = _otel()
    if otel is None:
        return
    dims = decision_dimensions(entry.correlation_id, entry.subject, entry.action, entry.outcome, entry.details)
    otel.decision(dims, entry.action, entry.outcome, entry.reason)


def rollout_progress(record: Rollout, entries: Sequence[RolloutEntry]) -> None:
    """A rollout's new history entries (the engine stored them): decisions, steps, weight, analyses, rollbacks."""
    otel = _otel()
    if otel is not None:
        for entry in entries:
            otel.rollout_entry(record, entry)


def scored(done: Mapping[str, Any]) -> None:
    """A range was scored (its record: rows, started, finished): the scoring throughput."""
    otel = _otel()
    if otel is not None:
        otel.scored_range(done)


def decision_dimensions(
    correlation_id: str, subject: str, action: str, outcome: str, details: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The dimensions of a decision: event id, model, version, rule, endpoint and the decision itself."""
    dims = {"aml.event_id": correlation_id, "aml.decision": f"{action}:{outcome}"}
    found = MODEL_SUBJECT.match(subject or "")
    if found:
        dims["aml.model"], dims["aml.version"] = found["model"], found["version"]
    for name in ("model", "version", "rule", "endpoint"):
        value = (details or {}).get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            dims[f"aml.{name}"] = str(value)
    return dims


def event_dimensions(raw: object) -> dict[str, str]:
    """Event id, type and, for a model's event, model and version, read from a delivered event.

    Intake calls this on whatever was delivered, before validation: only text is read, and cut.
    """
    if not isinstance(raw, dict):
        return {}

    def text(*names: str) -> str:
        value = next((raw[name] for name in names if isinstance(raw.get(name), str) and raw[name]), "")
        return value[:200]

    dims = {"event_id": text("id"), "event_type": text("eventType", "type")}
    found = MODEL_SUBJECT.match(text("subject"))
    if found:
        dims["model"], dims["version"] = found["model"], found["version"]
    return {name: value for name, value in dims.items() if value}


def flush(timeout_millis: int = 10_000) -> None:
    """Export what is buffered now (spans, logs, metrics): before a short-lived process exits."""
    if _otel() is None:
        return
    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), _logs.get_logger_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)


# -- configured only when on ------------------------------------------------------------------------


def _configure() -> _Otel:
    """Configure the distro once (unless the Functions worker did it already), then the app's instruments."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", RESOURCE_DETECTORS)
        os.environ.setdefault("OTEL_SERVICE_NAME", "aml-reactor")
        # The distro's default, a rate-limited sampler, starts from nothing and drops the first traces after a
        # cold start: with a few events an hour that is most of them. Every reaction is kept unless an operator
        # sets OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
        if "OTEL_TRACES_SAMPLER" not in os.environ:
            os.environ["OTEL_TRACES_SAMPLER"], os.environ["OTEL_TRACES_SAMPLER_ARG"] = SAMPLER, "1.0"
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            enable_live_metrics=False,
            enable_performance_counters=False,
            instrumentation_options={name: {"enabled": False} for name in DISABLED_INSTRUMENTATIONS},
        )
        # As host.json does for the host: the SDK's per-request HTTP logs are noise in Application Insights.
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    logging.getLogger(DECISION_LOGGER).setLevel(logging.INFO)
    return _Otel()


def _attributes(values: Mapping[str, object]) -> dict[str, Any]:
    """Span attributes: `aml.`-prefixed unless dotted already; None dropped; non-scalars as text."""
    kept: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        key = name if "." in name else f"aml.{name}"
        kept[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return kept


class _Span:
    """A live span as `span` yields it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def set(self, **attributes: object) -> None:
        self._inner.set_attributes(_attributes(attributes))


class _Otel:
    """The tracer, meter instruments and decision logger, made once per process."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace, self._context, self._link = trace, context, Link
        self._kinds = {"internal": SpanKind.INTERNAL, "consumer": SpanKind.CONSUMER, "client": SpanKind.CLIENT,
                       "server": SpanKind.SERVER, "producer": SpanKind.PRODUCER}
        self._error = functools.partial(Status, StatusCode.ERROR)
        self._propagator = TraceContextTextMapPropagator()
        self.tracer = trace.get_tracer("aml_reactor")
        self.decisions_log = logging.getLogger(DECISION_LOGGER)
        meter = metrics.get_meter("aml_reactor")
        self.events = meter.create_counter("aml_reactor.events", "{event}", "Events at intake by type and outcome")
        self.decisions = meter.create_counter("aml_reactor.decisions", "{decision}", "Decisions by kind and outcome")
        self.steps = meter.create_counter("aml_reactor.rollout.steps", "{step}", "Rollout steps by endpoint, action")
        self.weight = meter.create_gauge("aml_reactor.rollout.weight", "%", "Traffic share of the new deployment")
        self.analyses = meter.create_counter("aml_reactor.analyses", "{analysis}", "Rollout analyses by result")
        self.rollbacks = meter.create_counter("aml_reactor.rollbacks", "{rollback}", "Rollouts rolled back")
        self.event_lag = meter.create_histogram("aml_reactor.event_lag", "s", "From an event's time to its reaction")
        self.scoring_rate = meter.create_histogram(
            "aml_reactor.scoring.rows_per_second", "{row}/s", "Rows scored per second, per range"
        )

    @contextlib.contextmanager
    def span(self, name: str, parent: str | None, kind: str, attributes: Mapping[str, object]) -> Iterator[_Span]:
        context, links = None, []
        if parent:
            context = self._propagator.extract({TRACEPARENT: parent})
            current = self._trace.get_current_span().get_span_context()
            if current.is_valid:  # the host's invocation span, when the worker hands it over: linked, not lost
                links.append(self._link(current))
        with self.tracer.start_as_current_span(
            name, context=context, kind=self._kinds.get(kind, self._kinds["internal"]), links=links,
            attributes=_attributes(attributes), record_exception=False, set_status_on_exception=False,
        ) as inner:
            try:
                yield _Span(inner)
            except BaseException as error:
                inner.set_status(self._error(type(error).__name__))
                inner.set_attribute("aml.error", type(error).__name__)
                raise

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get(TRACEPARENT)

    def current_set(self, attributes: Mapping[str, object]) -> None:
        current = self._trace.get_current_span()
        if current.is_recording():
            current.set_attributes(_attributes(attributes))

    def decision(self, dims: dict[str, str], kind: str, outcome: str, reason: str) -> None:
        self.decisions.add(1, {"aml.decision_kind": kind, "aml.outcome": outcome})
        current = self._trace.get_current_span()
        if current.is_recording():  # the log record below is the event: a span event would be a second trace line
            current.set_attributes(dims)
        self.decisions_log.info(
            "decision %s: %s (%s)", dims["aml.decision"], dims.get("aml.model", dims["aml.event_id"]), reason[:500],
            extra={**dims, "aml.reason": reason[:500]},
        )

    def rollout_entry(self, record: Rollout, entry: RolloutEntry) -> None:
        """One new entry of a rollout's history: a decision, and the rollout metrics it moves."""
        action = entry.action
        dims = {
            "aml.event_id": entry.actor, "aml.decision": f"rollout:{action.value}", "aml.model": record.model,
            "aml.version": record.version, "aml.rule": record.rule, "aml.endpoint": record.endpoint,
        }
        self.decision({name: value for name, value in dims.items() if value or name == "aml.event_id"},
                      ROLLOUT_KIND, action.value, entry.reason)
        where = {"aml.endpoint": record.endpoint}
        if action in STEPS:
            self.steps.add(1, {**where, "aml.action": action.value})
        shares = entry.mirror if action is HistoryAction.MIRROR else entry.traffic
        if action in TRAFFIC_SET and shares is not None:
            self.weight.set(shares.get(record.deployment, 0), {**where, "aml.deployment": record.deployment})
        if action.analysis_result is not None:
            self.analyses.add(1, {**where, "aml.result": action.analysis_result})
        if action is HistoryAction.ROLLED_BACK:
            self.rollbacks.add(1, {**where, "aml.model": record.model})

    def scored_range(self, doc: Mapping[str, Any]) -> None:
        try:
            rows = int(doc.get("rows") or 0)
            seconds = (datetime.fromisoformat(str(doc["finished"])) - datetime.fromisoformat(str(doc["started"])))
        except (KeyError, TypeError, ValueError):
            return
        elapsed = seconds.total_seconds()
        if rows and elapsed > 0:
            self.scoring_rate.record(rows / elapsed)
            self.current_set({"aml.scoring.rows": rows, "aml.scoring.rows_per_second": round(rows / elapsed, 1)})


class _TracedPlatform:
    """Any MLPlatform, with a client span around every method call, named `platform.<method>`."""

    ARGUMENTS = {"location": "workspace", "workspace": "workspace", "name": "model", "version": "version",
                 "endpoint": "endpoint", "deployment": "deployment", "job_name": "job", "target": "target"}

    def __init__(self, platform: MLPlatform) -> None:
        self._platform = platform

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._platform, name)
        if not callable(target) or name.startswith("_"):
            return target

        @functools.wraps(target)
        def call(*args: Any, **kwargs: Any) -> Any:
            otel = _otel()
            if otel is None:
                return target(*args, **kwargs)
            with otel.span(f"platform.{name}", None, "client", self._dimensions(target, args, kwargs)):
                return target(*args, **kwargs)

        return call

    def _dimensions(self, target: Any, args: tuple, kwargs: dict) -> dict[str, object]:
        try:
            bound = inspect.signature(target).bind_partial(*args, **kwargs).arguments
        except (TypeError, ValueError):
            return {}
        dims: dict[str, object] = {}
        for parameter, value in bound.items():
            if parameter == "model" and hasattr(value, "name"):
                dims["model"], dims["version"] = value.name, getattr(value, "version", None)
            elif parameter in self.ARGUMENTS and isinstance(value, str):
                dims[self.ARGUMENTS[parameter]] = value[:200]
        return dims
