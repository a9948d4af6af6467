"""Batch endpoints: invoke starts a job in the endpoint's workspace, under a name of the service's choosing.

A name asked for in the invoke body is not honoured: "Setting kwarg job_name upon
ml_client.batch_endpoints.invoke() does nothing" (Azure/azure-sdk-for-python#32763). The job is
named by the service (the `batchjob-<guid>` form is this service's; no public source shows Azure's).

The invoke's answer carries the job's `id` as a path whose last segment is the job, and the job is
read again at `{scoringUri}/{job}`, its status in `properties.status` (Azure/azureml-examples,
cli/batch-score-rest.sh: `JOB_ID=$(echo $response | jq -r '.id')`, `JOB_ID_SUFFIX=${JOB_ID##/*/}`,
`wait_for_job_completion $SCORING_URI/$JOB_ID_SUFFIX` reading `.properties.status`). What precedes
the last segment of that id no public source shows: here it is the endpoint's ARM id and `/jobs/<name>`.
The status read there is the workspace job's (NotStarted, Running, Completed, Failed ...); the
example's loop waits for `Succeeded`, which no other source shows a batch job reporting.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply, arm_error

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

NAME = r"[A-Za-z0-9][A-Za-z0-9_\-]{0,254}"


def install(service: LocalAzureML) -> None:
    service.route("POST", rf"^/batch/(?P<endpoint>{NAME})/jobs$", lambda **kw: batch_invoke(service, **kw))
    service.route("GET", rf"^/batch/(?P<endpoint>{NAME})/jobs/(?P<job>{NAME})$",
                  lambda **kw: batch_job(service, **kw))


def batch_invoke(
    service: LocalAzureML, endpoint: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """Start a job, which (as in Azure ML) the endpoint's workspace then lists among its jobs."""
    found = _endpoint(service, endpoint)
    if found is None:
        return arm_error(404, "UserError", f"Batch endpoint {endpoint} was not found.")
    name = f"batchjob-{uuid.uuid4()}"  # properties.name is ignored, as azure-sdk-for-python#32763 reports
    properties = {**(body or {}).get("properties", {}), "status": "NotStarted", "name": name}
    workspace = found.split("/batchendpoints/", 1)[0]
    service.add(f"{workspace}/jobs/{name}", {"jobType": "Pipeline", "status": "NotStarted",
                                          "experimentName": endpoint, "tags": {}, "properties": {}})
    return Reply(200, {"id": _job_id(service, found, name), "name": name, "properties": properties})


def batch_job(
    service: LocalAzureML, endpoint: str, job: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """The job an invoke started, at `{scoringUri}/{job}`: `{id, name, properties.status}`."""
    found = _endpoint(service, endpoint)
    if found is None:
        return arm_error(404, "UserError", f"Batch endpoint {endpoint} was not found.")
    workspace = found.split("/batchendpoints/", 1)[0]
    resource = service.resources.get(f"{workspace}/jobs/{job}".lower())
    if resource is None or resource["properties"].get("experimentName") != endpoint:
        return arm_error(404, "UserError", f"Job {job} of batch endpoint {endpoint} was not found.")
    with service.lock:
        status = resource["properties"].get("status", "NotStarted")
    return Reply(200, {"id": _job_id(service, found, resource["name"]), "name": resource["name"],
                       "properties": {"status": status, "name": resource["name"]}})


def _endpoint(service: LocalAzureML, endpoint: str) -> str | None:
    """The stored key (lower case ARM id) of the batch endpoint of that name, in whichever workspace."""
    pattern = re.compile(rf"/batchendpoints/{re.escape(endpoint.lower())}$")
    return next((key for key in service.resources if pattern.search(key)), None)


def _job_id(service: LocalAzureML, endpoint_key: str, name: str) -> str:
    return f"{service.resources[endpoint_key]['id']}/jobs/{name}"
