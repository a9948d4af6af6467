"""Blob triggers with the Event Grid source: from a BlobCreated event to the binding value.

The host resolves the blob named by the event (`subject`
`/blobServices/default/containers/<container>/blobs/<name>`), checks it is under the
trigger's path, and passes what the parameter's type asks for: an SDK-type `BlobClient`
(deferred binding, built by the extension's own converter from the model binding data the
host sends), or the classic `func.InputStream` with the content read whole, as the host does.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from azure.storage.blob import BlobClient

from devhost.indexing import IndexedFunction

SUBJECT_PREFIX = "/blobServices/default/containers/"


class NotForThisTrigger(ValueError):
    """The event names a blob outside the trigger's container or is not a BlobCreated event."""


def binding_value(function: IndexedFunction, event: dict[str, Any]) -> Any:
    trigger = function.trigger
    container = trigger["path"].split("/", 1)[0]
    kind = str(event.get("eventType") or event.get("type") or "")
    subject = str(event.get("subject") or "")
    found_container, _, name = subject.removeprefix(SUBJECT_PREFIX).partition("/blobs/")
    if not kind.endswith("BlobCreated") or not subject.startswith(SUBJECT_PREFIX) or found_container != container:
        raise NotForThisTrigger(f"{kind} {subject!r} is not a new blob in {container!r}")
    connection = trigger.get("connection") or "AzureWebJobsStorage"
    annotation = function.annotations.get(trigger["name"])
    if isinstance(annotation, type) and issubclass(annotation, func.InputStream):
        blob = BlobClient.from_connection_string(os.environ[connection], container, name)
        content = blob.download_blob().readall()
        return func.blob.InputStream(data=content, name=f"{container}/{name}", uri=blob.url, length=len(content))
    return _sdk_blob_client(connection, container, name, annotation)


def _sdk_blob_client(connection: str, container: str, name: str, annotation: Any) -> Any:
    """What the worker builds for a deferred (SDK-type) binding, from the host's model binding data."""
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings.blob import BlobClientConverter

    content = json.dumps({"Connection": connection, "ContainerName": container, "BlobName": name})
    data = SimpleNamespace(version="1.0", source="AzureStorageBlobs", content_type="application/json", content=content)
    return BlobClientConverter.decode(Datum(value=data, type="model_binding_data"), trigger_metadata=None,
                                      pytype=annotation)
