"""Azure ML events, parsed into typed models from either schema Event Grid delivers.

Real events are untidy: keys of `data` arrive in PascalCase or camelCase (mixed in one
event), `modelVersion` as int or string, `runType` as null, statuses in any case, and
the envelope as the Event Grid schema or CloudEvents 1.0. Parsing folds all of that
into one shape and rejects, with the reason and the field, whatever cannot be trusted.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.domain.names import ASSET_NAME, JOB_NAME, WORKSPACE_ID

AML_PREFIX = "Microsoft.MachineLearningServices."
MAX_EVENT_BYTES = 1024 * 1024
# Azure ML's payloads nest 4 levels deep (envelope, data, tags, value); anything far deeper is not
# one of its events, and would take the JSON encoder and pydantic near Python's recursion limit.
MAX_DEPTH = 32
# Event ids are GUIDs and subjects `models/<name>:<version>` or `experiments/<id>/runs/<id>`;
# these bounds are far above both and keep ledger entries and audit lines small.
MAX_ID_CHARS = 1024
MAX_SUBJECT_CHARS = 4096
NAME = ASSET_NAME
# C0 and C1 control characters (NUL included): never in an id, a subject or a name Azure sends.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class EventKind(enum.StrEnum):
    MODEL_REGISTERED = "ModelRegistered"
    MODEL_DEPLOYED = "ModelDeployed"
    RUN_COMPLETED = "RunCompleted"
    RUN_STATUS_CHANGED = "RunStatusChanged"
    DATASET_DRIFT_DETECTED = "DatasetDriftDetected"

    @property
    def event_type(self) -> str:
        return AML_PREFIX + self.value


AML_EVENT_TYPES: tuple[str, ...] = tuple(kind.event_type for kind in EventKind)


class MalformedEvent(ValueError):
    """The event cannot be trusted: permanent, recorded as rejected, never retried."""


class UnknownEventType(ValueError):
    """A well-formed event of a type the app does not handle: recorded as ignored."""


class _Data(BaseModel):
    """Event data whose keys were folded to lower case before validation."""

    model_config = ConfigDict(populate_by_name=False, extra="ignore", frozen=True)


def _empty_if_null(value: object) -> object:
    return {} if value is None else value


def _safe_name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"{value!r} is not a valid Azure ML name: it must match {NAME.pattern}")
    return value


def _job_name(value: str) -> str:
    """A run id is the job's name, which Azure ML refuses with a `.` in it (`x..y`): such an event could never be
    looked up, only retried until it is dead-lettered."""
    if not JOB_NAME.match(value):
        raise ValueError(f"{value!r} cannot be an Azure ML job name: it must match {JOB_NAME.pattern}")
    return value


def _model_ids(values: list[str]) -> list[str]:
    """`ModelIds`: each `name:version`, both Azure ML names."""
    for value in _plain_texts(values):
        name, colon, version = value.rpartition(":")
        if not colon or not NAME.match(name) or not NAME.match(version):
            raise ValueError(f"{value!r} is not a model id `name:version` of Azure ML names ({NAME.pattern})")
    return values


def _plain_text(value: str) -> str:
    """An identifier from the event: no control characters (lone surrogates are refused for the whole event)."""
    if CONTROL.search(value):
        raise ValueError(f"{value!r} contains a control character")
    return value


def _plain_texts(values: list[str]) -> list[str]:
    for value in values:
        _plain_text(value)
    return values


class ModelRegisteredData(_Data):
    model_name: str = Field(alias="modelname")
    model_version: str = Field(alias="modelversion")
    model_tags: dict[str, Any] = Field(default_factory=dict, alias="modeltags")
    model_properties: dict[str, Any] = Field(default_factory=dict, alias="modelproperties")

    _names = field_validator("model_name", "model_version")(_safe_name)

    @field_validator("model_version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    _maps = field_validator("model_tags", "model_properties", mode="before")(_empty_if_null)


class ModelDeployedData(_Data):
    service_name: str = Field(alias="servicename")
    service_compute_type: str = Field("", alias="servicecomputetype")
    model_ids: list[str] = Field(default_factory=list, alias="modelids")
    service_tags: dict[str, Any] = Field(default_factory=dict, alias="servicetags")
    service_properties: dict[str, Any] = Field(default_factory=dict, alias="serviceproperties")

    @field_validator("model_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """`ModelIds` is one comma-separated string of `name:version`."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    _texts = field_validator("service_name", "service_compute_type")(_plain_text)
    _ids = field_validator("model_ids")(_model_ids)


class RunData(_Data):
    experiment_id: str = Field(alias="experimentid")
    experiment_name: str = Field("", alias="experimentname")
    run_id: str = Field(alias="runid")
    run_type: str | None = Field(None, alias="runtype")
    run_tags: dict[str, Any] = Field(default_factory=dict, alias="runtags")
    run_properties: dict[str, Any] = Field(default_factory=dict, alias="runproperties")
    run_status: str | None = Field(None, alias="runstatus")

    _names = field_validator("run_id")(_job_name)
    _texts = field_validator("experiment_id", "experiment_name")(_plain_text)

    @field_validator("run_status")
    @classmethod
    def _status_lower(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None

    _maps = field_validator("run_tags", "run_properties", mode="before")(_empty_if_null)


    def breach(self) -> MonitorBreach | None:
        """The model-monitor breach this run reports, or None for any other run."""
        return monitor_breach(self.run_id, self.run_tags, self.run_properties)

    @property
    def pipeline_run_id(self) -> str | None:
        """The pipeline run this run is a step of; None for a pipeline run or a job of its own.

        Step runs raise their own run events: `runType` `azureml.StepRun` (or `azureml.ReusedStepRun`), the
        pipeline run named by `azureml.pipelinerunid` in the tags (Azure-Samples/
        azure-machine-learning-pipeline-observability-sample, README.md, the "Pipeline Step Run" event) or the
        properties (PIPELINE_RUN_PROPERTY below). An unnamed pipeline of a step run is the empty string.
        """
        folded = {str(key).lower(): value for key, value in (*self.run_properties.items(), *self.run_tags.items())}
        parent = folded.get(PIPELINE_RUN_PROPERTY)
        if isinstance(parent, str) and parent and parent != self.run_id:
            return parent
        return "" if (self.run_type or "").lower() in STEP_RUN_TYPES else None


class DriftData(_Data):
    data_drift_id: str = Field(alias="datadriftid")
    data_drift_name: str = Field("", alias="datadriftname")
    run_id: str = Field(alias="runid")
    base_dataset_id: str = Field("", alias="basedatasetid")
    target_dataset_id: str = Field("", alias="targetdatasetid")
    drift_coefficient: float = Field(alias="driftcoefficient", allow_inf_nan=False)
    start_time: datetime | None = Field(None, alias="starttime")
    end_time: datetime | None = Field(None, alias="endtime")

    _texts = field_validator(
        "data_drift_id", "data_drift_name", "base_dataset_id", "target_dataset_id"
    )(_plain_text)


EventData = ModelRegisteredData | ModelDeployedData | RunData | DriftData

DATA_MODELS: dict[EventKind, type[EventData]] = {
    EventKind.MODEL_REGISTERED: ModelRegisteredData,
    EventKind.MODEL_DEPLOYED: ModelDeployedData,
    EventKind.RUN_COMPLETED: RunData,
    EventKind.RUN_STATUS_CHANGED: RunData,
    EventKind.DATASET_DRIFT_DETECTED: DriftData,
}


class Workspace(BaseModel):
    model_config = ConfigDict(frozen=True)

    subscription: str
    resource_group: str
    name: str

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}"
        )


class AmlEvent(BaseModel):
    """One Azure ML event, whichever schema it came in."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: EventKind
    schema_name: str = Field(description="'eventgrid' or 'cloudevents'")
    subject: str
    time: datetime | None
    workspace: Workspace
    data: EventData
    raw: dict[str, Any] = Field(repr=False)

    @property
    def event_type(self) -> str:
        return self.kind.event_type

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.raw)


def dedupe_key(raw: dict[str, Any]) -> str:
    """The ledger key of an event: its id within its source and type.

    Event ids are unique per topic; the type is part of the key because the public
    sample payloads reuse one id across types.
    """
    envelope = _fold(raw)
    parts = [
        str(envelope.get("topic") or envelope.get("source") or ""),
        str(envelope.get("eventtype") or envelope.get("type") or ""),
        str(envelope.get("id") or json.dumps(storable(raw), sort_keys=True, default=str)),
    ]
    # surrogatepass: an id with a lone surrogate still gets a key (to be rejected under it); valid text
    # encodes as plain UTF-8, so existing keys are unchanged.
    return hashlib.sha256("|".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _fold(mapping: dict[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in mapping.items()}


def parse_event(raw: object) -> AmlEvent:
    """Parse one event (a JSON object) of either schema.

    Raises MalformedEvent (with what and where) or UnknownEventType.
    """
    if not isinstance(raw, dict):
        raise MalformedEvent(f"an event must be a JSON object, got {type(raw).__name__}")
    problem = unreadable_part(raw)
    if problem:
        raise MalformedEvent(problem)
    size = len(json.dumps(raw, default=str).encode())
    if size > MAX_EVENT_BYTES:
        raise MalformedEvent(f"event is {size} bytes, over Event Grid's limit of {MAX_EVENT_BYTES}")
    envelope = _fold(raw)
    if "specversion" in envelope:
        schema, type_key, source_key, time_key = "cloudevents", "type", "source", "time"
    else:
        schema, type_key, source_key, time_key = "eventgrid", "eventtype", "topic", "eventtime"
    event_type = envelope.get(type_key)
    if not isinstance(event_type, str) or not event_type:
        hint = "" if schema == "cloudevents" else " (and no 'specversion', so not a CloudEvent either)"
        raise MalformedEvent(f"missing event type {type_key!r} in an event of the {schema} schema{hint}")
    if not event_type.startswith(AML_PREFIX):
        raise UnknownEventType(f"event type {event_type!r} is not an Azure ML event")
    try:
        kind = EventKind(event_type.removeprefix(AML_PREFIX))
    except ValueError:
        raise UnknownEventType(f"event type {event_type!r} is not handled by this app") from None
    event_id = envelope.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("missing or non-string 'id'")
    subject = envelope.get("subject") or ""
    for field, text, limit in (("id", event_id, MAX_ID_CHARS), ("subject", subject, MAX_SUBJECT_CHARS)):
        if not isinstance(text, str):
            raise MalformedEvent(f"{field!r} must be a string, got {type(text).__name__}")
        if len(text) > limit:
            raise MalformedEvent(f"{field!r} is {len(text)} characters, over the limit of {limit}")
        if CONTROL.search(text):
            raise MalformedEvent(f"{field!r} contains a control character: {text[:200]!r}")
    source = envelope.get(source_key)
    match = WORKSPACE_ID.match(source) if isinstance(source, str) else None
    if not match:
        raise MalformedEvent(f"{source_key!r} is not an Azure ML workspace resource id: {source!r}")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise MalformedEvent(f"'data' must be a JSON object in a {kind.value} event, got {type(data).__name__}")
    try:
        typed = DATA_MODELS[kind].model_validate(_fold(data))
    except ValidationError as error:
        raise MalformedEvent(f"invalid {kind.value} event: {_problems(error, 'data.')}") from None
    try:
        return AmlEvent(
            id=event_id,
            kind=kind,
            schema_name=schema,
            subject=subject,
            time=envelope.get(time_key) or None,
            workspace=Workspace(**match.groupdict()),
            data=typed,
            raw=raw,
        )
    except ValidationError as error:
        raise MalformedEvent(f"invalid {kind.value} event: {_problems(error)}") from None


def unreadable_part(raw: object) -> str | None:
    """Why the JSON value cannot be stored and audited as text, or None: nesting deeper than
    MAX_DEPTH, or a lone surrogate (which valid UTF-8 cannot carry; only a `\\ud800` escape can)."""
    pending: list[tuple[object, str, int]] = [(raw, "", 0)]
    while pending:
        value, where, depth = pending.pop()
        if depth > MAX_DEPTH:
            return f"{_field(cut(where, 160))} is nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, str):
            if not _valid_unicode(value):
                return f"{_field(where)} is not valid Unicode (a lone surrogate): {_printable(value)[:200]}"
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{_printable(str(key))[:100]}" if where else _printable(str(key))[:100]
                if not _valid_unicode(str(key)):
                    return f"a key in {_field(where)} is not valid Unicode (a lone surrogate): {name}"
                pending.append((item, name, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value))
    return None


def cut(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(where: str) -> str:
    return repr(where) if where else "the event"


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """The text with lone surrogates escaped, safe to write as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable(value: object, depth: int = MAX_DEPTH) -> object:
    """A copy of a JSON value that can be written as UTF-8 JSON: lone surrogates escaped,
    levels below `depth` replaced by a note (for keeping a rejected event as evidence)."""
    if isinstance(value, str):
        return _printable(value)
    if depth <= 0 and isinstance(value, dict | list):
        return f"(nested deeper than {MAX_DEPTH} levels: left out)"
    if isinstance(value, dict):
        return {_printable(str(key)): storable(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item, depth - 1) for item in value]
    return value


def _problems(error: ValidationError, prefix: str = "") -> str:
    """Each problem as `data.runId: why`: the field as Azure ML spells it (validation sees the keys folded)."""
    return "; ".join(
        prefix + ".".join(FIELD_NAMES.get(str(part), str(part)) for part in item["loc"]) + f": {item['msg']}"
        for item in error.errors()
    )


FIELD_NAMES = {
    str(field.alias): name[0] + name.title().replace("_", "")[1:]
    for data in (ModelRegisteredData, ModelDeployedData, RunData, DriftData)
    for name, field in data.model_fields.items() if field.alias
}
"""The folded key of each data field -> its name in Azure ML's events (`runid` -> `runId`)."""


# -- model monitoring (v2) ----------------------------------------------------------------
#
# Azure ML model monitoring reports a breach on a run of the monitoring pipeline: the step that
# evaluates a signal's metric thresholds tags its run with `azureml_modelmonitor_threshold_breached`,
# its text built by `_generate_error_message` in Azure/azureml-assets
# (assets/model_monitoring/components/src/model_monitor_evaluate_metrics_threshold/
# evaluate_metrics_threshold.py):
#   "The signal '<signal>' has failed due to one or more features violating metric thresholds.\n
#    The feature names and their corresponding computed metric values violating the threshold are \n
#    ['{"group":"<feature>","metric_value":0.4,"metric_name":"JensenShannonDistance","threshold_value":0.1}']\n"
# and, when the signal has notification emails, tags the root run with
# `azureml.modelmonitor.threshold.breached.<signal>` (shared_utilities/event_utils.py there). The docs
# (MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-monitor-model-performance.md, "Integrate
# Azure Machine Learning model monitoring with Azure Event Grid") filter RunStatusChanged on that tag
# containing "has failed due to one or more features violating metric thresholds", and name signals
# `<monitor>_<signal>` to filter per monitor.

BREACH_TAG = "azureml_modelmonitor_threshold_breached"
ROOT_BREACH_TAG_PREFIX = "azureml.modelmonitor.threshold.breached."
BREACH_TEXT = "has failed due to one or more features violating metric thresholds"
_SIGNAL = re.compile(r"The signal '(?P<name>[^']+)' " + re.escape(BREACH_TEXT))
_ROW = re.compile(r"\{[^{}]*\}")
# A step run names its pipeline run in this property: Azure/azureml-assets components read it so (the RAG
# component `flow_creation.py`: `run_properties["azureml.pipelinerunid"]`; its path in the repo not confirmed).
# Without it, the root run named by the MLflow tag `mlflow.rootRunId` (event_utils.py above), else the run.
PIPELINE_RUN_PROPERTY = "azureml.pipelinerunid"
STEP_RUN_TYPES = frozenset({"azureml.steprun", "azureml.reusedsteprun"})  # azureml-pipeline-core's run types
ROOT_RUN_TAG = "mlflow.rootRunId"


class BreachedMetric(BaseModel):
    """One feature's metric over its threshold, as the breach message lists it."""

    model_config = ConfigDict(frozen=True)

    group: str = Field(description="the feature (or group) the metric was computed for")
    metric: str
    value: float | None = None
    threshold: float | None = None


class SignalBreach(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the signal's name; `<monitor>_<signal>` by the docs' convention")
    metrics: tuple[BreachedMetric, ...] = ()


class MonitorBreach(BaseModel):
    """A model monitor's threshold breach, read from a monitoring run's tags."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(description="the run that carries the breach tag")
    monitoring_run_id: str = Field(description="the monitoring pipeline run it belongs to")
    signals: tuple[SignalBreach, ...]

    @property
    def signal_names(self) -> list[str]:
        return [signal.name for signal in self.signals]


def monitor_breach(run_id: str, tags: Mapping[str, Any], properties: Mapping[str, Any]) -> MonitorBreach | None:
    """The breach a run's tags report (None when they report none); metrics when the message lists them."""
    folded = {str(key).lower(): value for key, value in tags.items()}
    signals: dict[str, SignalBreach] = {}
    message = folded.get(BREACH_TAG)
    if isinstance(message, str) and BREACH_TEXT in message:
        for signal in parse_breach_message(message):
            signals.setdefault(signal.name, signal)
    for key, value in folded.items():
        name = key.removeprefix(ROOT_BREACH_TAG_PREFIX)
        if name != key and name and isinstance(value, str):
            parsed = {signal.name.lower(): signal for signal in parse_breach_message(value)}
            found = parsed.get(name)
            signals.setdefault(found.name if found else name, found or SignalBreach(name=name))
    if not signals:
        return None
    folded_properties = {str(key).lower(): value for key, value in properties.items()}
    parent = folded_properties.get(PIPELINE_RUN_PROPERTY) or folded.get(ROOT_RUN_TAG.lower())
    return MonitorBreach(
        run_id=run_id, monitoring_run_id=str(parent) if parent else run_id, signals=tuple(signals.values())
    )


def parse_breach_message(message: str) -> list[SignalBreach]:
    """The signals a breach message names, each with the metric rows that follow it."""
    found = list(_SIGNAL.finditer(message))
    signals = []
    for index, match in enumerate(found):
        end = found[index + 1].start() if index + 1 < len(found) else len(message)
        rows = [_metric(row.group(0)) for row in _ROW.finditer(message, match.end(), end)]
        signals.append(SignalBreach(name=match["name"], metrics=tuple(row for row in rows if row is not None)))
    return signals


def _metric(text: str) -> BreachedMetric | None:
    try:
        row = json.loads(text)
    except ValueError:
        return None
    if not isinstance(row, dict) or not row.get("metric_name"):
        return None
    return BreachedMetric(
        group=str(row.get("group", "")), metric=str(row["metric_name"]),
        value=_number(row.get("metric_value")), threshold=_number(row.get("threshold_value")),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None
