"""Azure ML's data collector, as the local service's online deployments run it.

A deployment collects when its `properties.dataCollector` enables collections (REST `DataCollector`:
`collections` (required), `rollingRate` Year | Month | Day | Hour | Minute, each `Collection` with
`dataCollectionMode` Enabled | Disabled and `samplingRate` 0..1; azure-ai-ml 1.35.2
`_restclient/arm_ml_service/models/_models.py`, which `entities.DataCollector._to_rest_object` fills and which
spells the mode in lower case). In Azure the scoring script logs `model_inputs` and `model_outputs` with the
`azureml-ai-monitoring` `Collector`; the local deployments score ONNX with no script, so the service logs them
itself, as that script would.

Where and what (docs "Collect production data from models deployed for real-time inferencing",
MicrosoftDocs/azure-ai-docs `articles/machine-learning/how-to-collect-production-data.md`, "Store collected
data in Blob Storage" and "Data collector batching"):

- blobs `modelDataCollector/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/{instance_id}.jsonl` in
  the workspace's default datastore `workspaceblobstore`; the REST `rollingRate` doc gives `/yyyy/MM/dd/HH/` for
  Hour and `/yyyy/MM/dd/` for Day (Year, Month and Minute follow the same pattern: the local service's guess);
- each line a record `{"specversion": "1.0", "id", "source": <deployment ARM id>, "type":
  "azureml.inference.<collection>", "datacontenttype": "application/json", "time", "data": [rows],
  "contentrange", "correlationid", "xrequestid", "modelversion", "collectdatatype", "agent"}`;
- requests close in time are batched into one record with one `correlationid`, so each row also carries its own
  id in a column (the docs recommend logging your own id as a column): here `correlationid`,
  `<request id>:<row>`. The request id is one the service makes per request (the records' documented
  `xrequestid`), never a caller's, which could repeat; the service answers it in the `x-request-id` header (the
  local choice of header), and a mirrored copy keeps it (no document says whether Azure's does: the local choice).

Sampling decides per request from a hash of its id, so a request and its mirrored copy are both collected or
neither (the local choice; the docs only say "the percentage of data to collect").
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from localaml.datastores import workspace_container

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

ROOT = "modelDataCollector"
INPUTS, OUTPUTS = "model_inputs", "model_outputs"
ID_COLUMN = "correlationid"
ROLLING = {"year": "%Y", "month": "%Y/%m", "day": "%Y/%m/%d", "hour": "%Y/%m/%d/%H", "minute": "%Y/%m/%d/%H/%M"}
MODES = ("enabled", "disabled")
AGENT = "azureml-ai-monitoring/0.1.0b4"  # the agent of the docs' batched example
FLUSH_SECONDS = 1.0
log = logging.getLogger(__name__)
Resource = dict[str, Any]


def check(properties: dict[str, Any]) -> None:
    """Refuse a `dataCollector` the REST schema does not allow: 400 naming the field."""
    from localaml.endpoints import bad_request

    collector = properties.get("dataCollector")
    if collector is None:
        return
    if not isinstance(collector, dict) or not isinstance(collector.get("collections"), dict):
        raise bad_request("InvalidDataCollector", "dataCollector.collections is required: a map of collection "
                          "names to their configuration", target="dataCollector.collections")
    rolling = collector.get("rollingRate")
    if rolling is not None and str(rolling).lower() not in ROLLING:
        raise bad_request("InvalidDataCollector", f"dataCollector.rollingRate {rolling!r} must be one of Year, Month, "
                          "Day, Hour, Minute", target="dataCollector.rollingRate")
    for name, collection in collector["collections"].items():
        where = f"dataCollector.collections.{name}"
        if not isinstance(collection, dict):
            raise bad_request("InvalidDataCollector", f"{where} must be an object", target=where)
        mode = collection.get("dataCollectionMode")
        if mode is not None and str(mode).lower() not in MODES:
            raise bad_request("InvalidDataCollector", f"{where}.dataCollectionMode {mode!r} must be Enabled or "
                              "Disabled", target=f"{where}.dataCollectionMode")
        rate = collection.get("samplingRate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1):
            raise bad_request("InvalidDataCollector", f"{where}.samplingRate must be a number from 0 to 1",
                              target=f"{where}.samplingRate")


def enabled(deployment: Resource) -> tuple[str, dict[str, float]]:
    """The deployment's rolling rate and its enabled collections with their sampling rates."""
    collector = deployment["properties"].get("dataCollector") or {}
    collections = {
        name: float(1.0 if settings.get("samplingRate") is None else settings["samplingRate"])
        for name, settings in (collector.get("collections") or {}).items()
        if str(settings.get("dataCollectionMode") or "").lower() == "enabled"
    }
    return str(collector.get("rollingRate") or "Hour").lower(), collections


def sampled(request_id: str, rate: float) -> bool:
    """Whether this request is collected at `rate`: the same answer for every deployment that sees it."""
    if rate >= 1:
        return True
    return int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < rate


@dataclass
class _Pending:
    """Rows waiting for the next flush, by blob folder."""

    rows: dict[tuple[str, str, str], list[tuple[str, list[dict[str, Any]]]]] = field(default_factory=dict)
    started: datetime | None = None


class Collector:
    """One service's collector: buffers rows and writes them every FLUSH_SECONDS, one record per folder."""

    def __init__(self, service: LocalAzureML) -> None:
        self.service = service
        self.flush_seconds = FLUSH_SECONDS
        self._pending = _Pending()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # held while a flush writes: another flush waits for those rows
        self._timer: threading.Timer | None = None

    def collect(self, deployment: Resource, request_id: str, rows: list[list[float]], answer: dict[str, Any]) -> None:
        """Log a scored request's inputs and outputs, when the deployment collects them."""
        rolling, collections = enabled(deployment)
        wanted = {name: rate for name, rate in collections.items() if name in (INPUTS, OUTPUTS)}
        if not wanted:
            return
        now = datetime.now(UTC)
        ids = [f"{request_id}:{index}" for index in range(len(rows))]
        data = {
            INPUTS: [{ID_COLUMN: row_id, **{f"f{i}": value for i, value in enumerate(row)}}
                     for row_id, row in zip(ids, rows, strict=True)],
            OUTPUTS: _outputs(ids, answer),
        }
        with self._lock:
            for name, rate in wanted.items():
                if sampled(request_id, rate):
                    folder = _folder(deployment["id"], name, now.strftime(ROLLING.get(rolling, ROLLING["hour"])))
                    self._pending.rows.setdefault((deployment["id"], name, folder), []).append(
                        (request_id, data[name]))
            self._pending.started = self._pending.started or now
            if self._timer is None:
                self._timer = threading.Timer(self.flush_seconds, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write what is pending: per folder one blob `{instance_id}.jsonl`, its record batching the requests.
        When it returns, every row collected before it was called is written, even by a flush under way."""
        with self._flushing:
            self._write_pending()

    def _write_pending(self) -> None:
        with self._lock:
            pending, started = self._pending.rows, self._pending.started or datetime.now(UTC)
            self._pending, self._timer = _Pending(), None
        storage = self.service.storage
        if storage is None or not pending:
            return
        for (deployment_id, name, folder), requests in pending.items():
            workspace = deployment_id.split("/workspaces/", 1)[1].split("/", 1)[0]
            blob = f"{folder}/{uuid.uuid4()}.jsonl"
            line = json.dumps(_record(deployment_id, name, started, requests), separators=(",", ":"))
            try:
                storage.get_blob_client(workspace_container(workspace), blob).upload_blob(
                    line.encode() + b"\n", overwrite=True)
            except Exception as error:  # the collector's failures never fail scoring (the SDK's `on_error`)
                log.warning("data collector: %s not written: %s", blob, error)


def _outputs(ids: list[str], answer: dict[str, Any]) -> list[dict[str, Any]]:
    predictions = answer.get("predictions") or []
    probabilities = answer.get("probabilities") or [None] * len(predictions)
    return [{ID_COLUMN: row_id, "prediction": prediction, **({"probabilities": probs} if probs is not None else {})}
            for row_id, prediction, probs in zip(ids, predictions, probabilities, strict=False)]


def _folder(deployment_id: str, collection: str, rolled: str) -> str:
    endpoint, deployment = deployment_id.split("/onlineEndpoints/", 1)[1].split("/deployments/", 1)
    return f"{ROOT}/{endpoint}/{deployment}/{collection}/{rolled}"


def _record(deployment_id: str, collection: str, time: datetime,
            requests: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """The record of the docs' schema; batched requests share it and the first request's id."""
    rows = [row for _, batch in requests for row in batch]
    size = len(json.dumps(rows, separators=(",", ":")).encode())
    first = requests[0][0]
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": deployment_id,
        "type": f"azureml.inference.{collection}", "datacontenttype": "application/json",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "data": rows, "contentrange": f"bytes 0-{size - 1}/{size}",
        "correlationid": first, "xrequestid": first, "modelversion": "default",
        "collectdatatype": "pandas.core.frame.DataFrame", "agent": AGENT,
    }


_COLLECTORS: weakref.WeakKeyDictionary[LocalAzureML, Collector] = weakref.WeakKeyDictionary()
_MADE = threading.Lock()


def of(service: LocalAzureML) -> Collector:
    """The service's collector, made on first use."""
    with _MADE:
        if service not in _COLLECTORS:
            _COLLECTORS[service] = Collector(service)
        return _COLLECTORS[service]
