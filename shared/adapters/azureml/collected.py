"""`PredictionLogs` on Azure ML's data collector: the `model_outputs` JSON lines in the workspace's blob storage.

Where the collector writes (docs "Collect production data from models deployed for real-time inferencing",
"Store collected data in Blob Storage"): the workspace's default datastore `workspaceblobstore`, under
`modelDataCollector/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/{instance_id}.jsonl` with the
`Hour` rolling rate the app's deployments ask for (`AzureMLPlatform.create_deployment`). Each line is a record
whose `data` holds the logged rows; requests close in time share a record, so each row carries its own id in
the `correlationid` column, which the scoring code logs (the docs recommend such a column).

The datastore is read through azure-ai-ml (`datastores.get_default`, with its account key when it has one:
`listSecrets`), then its blobs with azure-storage-blob: with the account key, or else the app's identity
(which then needs `Storage Blob Data Reader` on the workspace's storage account).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters.azureml.clients import Clients, Cloud
from shared.adapters.azureml.errors import translated
from shared.domain.ports import CollectedPrediction, PlatformError
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

ROOT = "modelDataCollector"
COLLECTION = "model_outputs"
ID_COLUMN = "correlationid"
MAX_HOURS = 48  # hourly folders read per call: a mirror phase's window, not a history
MAX_ROWS = 100_000
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,31}$")


class CollectedPredictions:
    """The rows deployments' data collectors logged, read from the workspace's default datastore."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients
        self._containers: dict[str, ContainerClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> CollectedPredictions:
        """Azure's cloud, or the local Azure ML service when the settings name it (as the platform adapter)."""
        from shared.adapters.azureml.localservice import configured_cloud

        return cls(Clients(settings, cloud=configured_cloud(settings) or Cloud()))

    def collected(self, workspace: str, endpoint: str, deployment: str, since: datetime,
                  until: datetime) -> list[CollectedPrediction]:
        for kind, name in (("endpoint", endpoint), ("deployment", deployment)):
            if not NAME.match(name):
                raise ValueError(f"{kind} name {name!r} must match {NAME.pattern}")
        since, until = since.astimezone(UTC), until.astimezone(UTC)
        start = max(since, until - timedelta(hours=MAX_HOURS - 1)).replace(minute=0, second=0, microsecond=0)
        container = self._container(workspace)
        rows: list[CollectedPrediction] = []
        hour = start
        with self._translated(f"predictions collected by {deployment} of {endpoint} in {workspace}", workspace):
            while hour <= until and len(rows) < MAX_ROWS:
                prefix = f"{ROOT}/{endpoint}/{deployment}/{COLLECTION}/{hour:%Y/%m/%d/%H}/"
                for blob in container.list_blobs(name_starts_with=prefix):
                    if blob.last_modified is not None and blob.last_modified < since:
                        continue  # written before the window: every record in it is older
                    rows += records(container.download_blob(blob.name).readall(), since, until)
                hour += timedelta(hours=1)
        rows.sort(key=lambda row: row.time)
        return rows[:MAX_ROWS]

    def _container(self, workspace: str) -> ContainerClient:
        with self._lock:
            found = self._containers.get(workspace)
        if found is not None:
            return found
        from azure.storage.blob import ContainerClient

        client = self._clients.ml(workspace)
        with self._translated(f"the default datastore of {workspace}", workspace):
            store: Any = client.datastores.get_default(include_secrets=True)
        account, name = getattr(store, "account_name", None), getattr(store, "container_name", None)
        if not account or not name:
            raise PlatformError(f"the default datastore of {workspace} is not a blob container")
        secret = getattr(store.credentials, "account_key", None) or getattr(store.credentials, "sas_token", None)
        suffix = store.endpoint or (self._clients.cloud.metadata or {}).get("storage_endpoint", "core.windows.net")
        url = f"{store.protocol or 'https'}://{account}.blob.{suffix}"
        container = ContainerClient(url, name, credential=secret or self._clients.credential)
        with self._lock:
            self._containers[workspace] = container
        return container

    def _translated(self, what: str, workspace: str) -> Any:
        return translated(what, identity=self._clients.identity, scope=self._clients.scope(workspace))


def records(content: bytes, since: datetime, until: datetime) -> list[CollectedPrediction]:
    """The rows of a collector's JSON lines whose record time is in [since, until]; lines that are not
    records of the documented schema are skipped."""
    found: list[CollectedPrediction] = []
    for line in content.splitlines():
        try:
            record = json.loads(line)
            time = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
            data = record["data"]
        except (ValueError, KeyError, TypeError):
            continue
        if time.tzinfo is None or not since.replace(microsecond=0) <= time <= until or not isinstance(data, list):
            continue
        found += [row for row in (prediction(item, time) for item in data) if row is not None]
    return found


def prediction(item: object, time: datetime) -> CollectedPrediction | None:
    """A logged output row: `{"correlationid", "prediction", "probabilities"?}` as the scoring code logs it."""
    if not isinstance(item, dict) or "prediction" not in item:
        return None
    value, probabilities = item["prediction"], item.get("probabilities")
    row_id = item.get(ID_COLUMN)
    score = None
    if isinstance(probabilities, list) and len(probabilities) == 2 and all(
            isinstance(p, int | float) for p in probabilities):
        score = float(probabilities[1])
    if isinstance(value, int | str) or (isinstance(value, float) and probabilities):
        label = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    elif isinstance(value, float):
        label, score = None, value  # a regression: its value is the score
    else:
        return None
    return CollectedPrediction(id=str(row_id) if row_id is not None else None, time=time, label=label, score=score)
