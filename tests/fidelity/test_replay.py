"""Every operation the adapter uses, replayed from its public source against the local service.

Each case is one fixture under `recordings/`, named by the case id; the fixture names its
source (repository and path of the SDK recording or REST spec example, or the docs page
where no recording exists) and failures quote it. A seed puts in place what the recorded
request needs (the model version it reads, the endpoint it polls ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from localaml.service import LocalAzureML
from tests.fidelity.replay import Client, fixture_names, header_differences, load, shape_differences

Overrides = dict[str, Any]


def _nothing(client: Client) -> Overrides:
    return {}


def _model_version(client: Client) -> Overrides:
    client.replay("model_version_put").raise_for_status()
    return {}


def _two_model_versions(client: Client) -> Overrides:
    """Version 1, then the recorded version 3: label latest is 3."""
    put = load("model_version_put").request
    client.send("PUT", put["path"].replace("/versions/3", "/versions/1"), put["query"], put["body"]).raise_for_status()
    client.send("PUT", put["path"], put["query"], put["body"]).raise_for_status()
    return {}


def _operation(client: Client) -> Overrides:
    """The status URL the endpoint PUT hands out."""
    put = client.replay("online_endpoint_put")
    put.raise_for_status()
    url = urlsplit(put.headers["Azure-AsyncOperation"])
    return {"path": url.path}


def _endpoint(client: Client) -> Overrides:
    client.replay("online_endpoint_put").raise_for_status()
    return {}


def _deployment(client: Client) -> Overrides:
    client.service.add_online_endpoint("dev", "testEndpointName", {"testDeploymentName": 100})
    client.service.add_online_deployment("dev", "testEndpointName", "testDeploymentName", "azureml:churn:3")
    return {}


def _idle_deployment(client: Client) -> Overrides:
    """A deployment without traffic: Azure refuses to delete one that still takes traffic."""
    client.service.add_online_endpoint("dev", "testEndpointName", {})
    client.service.add_online_deployment("dev", "testEndpointName", "testDeploymentName", "azureml:churn:3")
    return {}


def _batch_endpoint(client: Client) -> Overrides:
    client.service.add_batch_endpoint("dev", "batch-ept-ee9aa834dcfa4d5")
    return {}


def _identity_workspace(client: Client) -> Overrides:
    """Workspace `dev` switched to identity-based storage access, as the recorded workspace is."""
    from localaml.datastores import identity_based

    identity_based(client.service, "dev")
    return {}


def _batch_job(client: Client) -> Overrides:
    """The job an invoke started: polled at `{scoringUri}/{job}`, the job being the last segment of the answer's id."""
    _batch_endpoint(client)
    started = client.replay("batch_invoke")
    started.raise_for_status()
    job = started.json()["id"].rsplit("/", 1)[-1]
    return {"path": load("batch_job_get").request["path"].replace("{job}", job)}


def _pipeline_job(client: Client) -> Overrides:
    client.replay("pipeline_job_put").raise_for_status()
    return {}


def _registry_model_version(client: Client) -> Overrides:
    """The version the recorded PUT made: the GET reads the state that PUT left (as recorded, in that order)."""
    client.replay("registry_model_version_put").raise_for_status()
    return {}


def _workspace_model(client: Client) -> Overrides:
    """The workspace version to share, named by its asset id (the workspace's guid) as the SDK names it."""
    client.replay("model_version_put").raise_for_status()
    request = load("registry_import").request
    guid = client.service.resources[client.service.workspace_id("dev").lower()]["properties"]["workspaceId"]
    source = request["body"]["properties"]["sourceAssetId"].replace("/workspaces/00000/", f"/workspaces/{guid}/")
    return {"body": {"properties": {**request["body"]["properties"], "sourceAssetId": source}}}


def _asset_operation(client: Client) -> Overrides:
    """The Location the registry version PUT hands out."""
    put = client.replay("registry_model_version_put")
    put.raise_for_status()
    return {"path": urlsplit(put.headers["Location"]).path}


def _registry_sas(client: Client) -> Overrides:
    client.service.blob_sas[("test_267902544371", "2")] = "https://devstoreaccount1.blob.localaml.test/c?sig=x"
    return {}


def _metrics(client: Client) -> Overrides:
    client.service.monitor_series["RequestsPerMinute"] = [
        {
            "metadatavalues": [{"name": {"value": "envoy_response_code", "localizedValue": "envoy_response_code"},
                                "value": "200"}],
            "data": [{"timeStamp": "2021-04-20T09:00:00Z", "average": 7.0}],
        }
    ]
    return {}


def _mlflow_run(client: Client) -> str:
    """A finished run with a metric and a child, made through MLflow's own REST calls; the parent's id."""
    base = load("mlflow_runs_get").request["path"].removesuffix("/runs/get")
    parent = client.send("POST", f"{base}/runs/create", body={"experiment_id": "0", "run_name": "job"}).json()
    parent_id = parent["run"]["info"]["run_id"]
    tags = [{"key": "mlflow.parentRunId", "value": parent_id}]
    create = {"experiment_id": "0", "run_name": "evaluate", "tags": tags}
    child = client.send("POST", f"{base}/runs/create", body=create).json()
    for run_id in (parent_id, child["run"]["info"]["run_id"]):
        metric = {"key": "accuracy", "value": 0.91, "timestamp": 1700000050000, "step": 0}
        client.send("POST", f"{base}/runs/log-batch", body={"run_id": run_id, "metrics": [metric]}).raise_for_status()
        update = {"run_id": run_id, "status": "FINISHED", "end_time": 1700000060000}
        client.send("POST", f"{base}/runs/update", body=update).raise_for_status()
    return str(parent_id)


def _mlflow_get(client: Client) -> Overrides:
    return {"query": {"run_id": _mlflow_run(client)}}


def _mlflow_search(client: Client) -> Overrides:
    search = load("mlflow_runs_search").request["body"]
    return {"body": {**search, "filter": f"tags.mlflow.parentRunId = '{_mlflow_run(client)}'"}}


SEEDS: dict[str, Callable[[Client], Overrides]] = {
    "workspace_get": _nothing,
    "workspace_get_identity": _identity_workspace,
    "datastore_get": _nothing,
    "datastore_list_secrets": _nothing,
    "model_version_put": _nothing,
    "model_version_get": _model_version,
    "model_versions_active": _model_version,
    "model_versions_latest": _two_model_versions,
    "model_versions_missing_container": _nothing,
    "registry_discovery": _nothing,
    "registry_model_versions_empty": _nothing,
    "registry_model_version_get": _registry_model_version,
    "registry_import": _workspace_model,
    "registry_datarefs": _registry_sas,
    "registry_model_version_put": _nothing,
    "registry_asset_operation": _asset_operation,
    "online_endpoint_put": _nothing,
    "online_endpoint_get": _endpoint,
    "operation_status": _operation,
    "online_endpoint_missing": _nothing,
    "online_deployments_list": _deployment,
    "online_deployment_get": _deployment,
    "online_deployment_delete": _idle_deployment,
    "batch_endpoint_get": _batch_endpoint,
    "batch_invoke": _batch_endpoint,
    "batch_job_get": _batch_job,
    "pipeline_job_put": _nothing,
    "job_get": _pipeline_job,
    "monitor_metrics": _metrics,
    "monitor_metrics_unknown_name": _nothing,
    "mlflow_runs_get": _mlflow_get,
    "mlflow_runs_search": _mlflow_search,
}

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@pytest.fixture
def client(fake: LocalAzureML, credential: TokenCredential) -> Client:
    """The app's own token, as the app's clients get it."""
    return Client(fake, credential.get_token("https://management.azure.com/.default").token)


def test_every_fixture_has_a_seed_and_names_its_source() -> None:
    assert sorted(SEEDS) == fixture_names()
    for name in fixture_names():
        source = load(name).source
        assert source["repo"] and source["path"] and source["what"], name


@pytest.mark.parametrize("name", fixture_names())
def test_replay(name: str, client: Client) -> None:
    """The recorded request gets the recorded status, LRO headers and body shape (source: the fixture's)."""
    fixture = load(name)
    overrides = SEEDS[name](client)
    request = {**fixture.request, **overrides}
    answer = client.send(request["method"], request["path"], request["query"], request["body"])
    expected = fixture.response
    assert answer.status_code == expected["status"], f"{fixture.cited}: {answer.status_code} {answer.text[:500]}"
    assert header_differences(expected["headers"], answer.headers) == [], fixture.cited
    ours = answer.json() if answer.content else None
    assert shape_differences(expected["body"], ours) == [], fixture.cited
