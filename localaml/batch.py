"""Batch endpoints: invoke starts a job in the endpoint's workspace, under a name of the service's choosing.

A name asked for in the invoke body is not honoured: "Setting kwarg job_name upon
ml_client.batch_endpoints.invoke() does nothing" (Azure/azure-sdk-for-python#32763). The job is
named by the service (the `batchjob-<guid>` form is this service's; no public source shows Azure's).
"""

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
    name = f"batchjob-{uuid.uuid4()}"  # properties.name is ignored, as azure-sdk-for-python#32763 reports
    properties = {**body.get("properties", {}), "status": "NotStarted", "name": name}
    for key in list(service.resources):
        workspace, _, found = key.partition("/batchendpoints/")
        if found == endpoint.lower():
            service.add(f"{workspace}/jobs/{name}", {"jobType": "Pipeline", "status": "NotStarted",
                                                  "experimentName": endpoint, "tags": {}, "properties": {}})
    return Reply(200, {"id": name, "name": name, "properties": properties})

