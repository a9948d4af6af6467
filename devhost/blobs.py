"""Blob triggers with the Event Grid source: from a BlobCreated event to the binding value.

The host resolves the blob named by the event's `data.url` on the trigger's storage
connection, checks it is under the trigger's path, and passes either the classic
`func.InputStream` (content read whole, as the host does) or, for SDK-type bindings,
a `BlobClient` that the function streams from itself.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

import azure.functions as func
from azure.storage.blob import BlobClient

from devhost.indexing import IndexedFunction


class NotForThisTrigger(ValueError):
    """The event names a blob outside the trigger's container or is not a BlobCreated event."""


def binding_value(function: IndexedFunction, event: dict[str, Any]) -> Any:
    trigger = function.trigger
    container = trigger["path"].split("/", 1)[0]
    url = (event.get("data") or {}).get("url", "")
    path = unquote(urlsplit(url).path).lstrip("/").split("/")
    # Path-style URLs (Azurite) carry the account name first: /<account>/<container>/<blob>.
    if container in path:
        path = path[path.index(container) :]
    if not event.get("eventType", event.get("type", "")).endswith("BlobCreated") or path[0] != container:
        raise NotForThisTrigger(f"{url!r} is not a new blob in {container!r}")
    blob = BlobClient.from_connection_string(
        os.environ[trigger.get("connection") or "AzureWebJobsStorage"], container, "/".join(path[1:])
    )
    annotation = function.annotations.get(trigger["name"])
    if isinstance(annotation, type) and issubclass(annotation, func.InputStream):
        content = blob.download_blob().readall()
        return func.blob.InputStream(
            data=content, name=f"{container}/{blob.blob_name}", uri=blob.url, length=len(content)
        )
    return blob
