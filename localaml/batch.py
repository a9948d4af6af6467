"""Batch endpoints: invoke starts a job in the endpoint's workspace."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply

if TYPE_CHECKING:
    from localaml.service import LocalAzureML


def install(service: LocalAzureML) -> None:
    service.route("POST", r"^/batch/(?P<endpoint>[^/]+)/jobs$", lambda **kw: batch_invoke(service, **kw))


def batch_invoke(
    service: LocalAzureML, endpoint: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """Start a job, which (as in Azure ML) the endpoint's workspace then lists among its jobs."""
    name = body.get("properties", {}).get("name") or uuid.uuid4().hex
    properties = {"status": "NotStarted", **body.get("properties", {})}
    for key in list(service.resources):
        workspace, _, found = key.partition("/batchendpoints/")
        if found == endpoint.lower():
            service.add(f"{workspace}/jobs/{name}", {"jobType": "Pipeline", "status": "NotStarted",
                                                  "experimentName": endpoint, "tags": {}, "properties": {}})
    return Reply(200, {"id": name, "name": name, "properties": properties})

