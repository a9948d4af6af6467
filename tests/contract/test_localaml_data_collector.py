"""Azure ML's data collector on the local service, through the real azure-ai-ml and the app's adapters.

The app's adapter deploys with `data_collector` (the SDK sends `properties.dataCollector`); the service logs
each scored request's `model_inputs` and `model_outputs` as JSON lines in the workspace's default datastore
(a TLS Azurite reached through the storage proxy), in the documented folder layout and record schema (docs
"Collect production data from models deployed for real-time inferencing", "Store collected data in Blob
Storage", "Data collector batching"; sources in `localaml/collector.py`). `CollectedPredictions` reads the
rows back, and a mirrored copy's rows carry the live request's id, so the two deployments' rows pair.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.ai.ml.entities import ManagedOnlineEndpoint

from devhost.localaml import LocalAzureMLStack, running_local_azureml
from devhost.waiting import wait_until
from localaml import collector
from localaml.datastores import workspace_container
from localaml.endpoints import online
from localaml.samples import good_model
from shared.adapters.azureml import AzureMLPlatform
from shared.adapters.azureml.collected import CollectedPredictions
from shared.domain.ports import DeploymentSpec
from shared.settings import Settings

ENDPOINT = "credit-risk"
LAYOUT = re.compile(r"^modelDataCollector/credit-risk/(?P<deployment>blue|green)/(?P<collection>model_inputs|"
                    r"model_outputs)/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.jsonl$")
RECORD_KEYS = {"specversion", "id", "source", "type", "datacontenttype", "time", "data", "contentrange",
               "correlationid", "xrequestid", "modelversion", "collectdatatype", "agent"}
ROWS = [[0.1 * i for i in range(8)], [-0.3 * i for i in range(8)]]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzureMLStack]:
    """The service with what the app finds (the scoring assets, the prod endpoint), blue serving, green mirrored
    50 % and answering the other class on every row (`flipRate` 1)."""
    with running_local_azureml(tmp_path_factory.mktemp("localaml"), seed_workspaces=False) as running:
        service = running.service
        feature = online(service)
        feature.endpoint_create_seconds = feature.endpoint_update_seconds = feature.deployment_create_seconds = 0.3
        service.add_workspace("prod")
        prod = service.workspace_id("prod")
        # The scoring assets the adapter's deployments name (`tools.register_assets` registers them in full).
        service.add(f"{prod}/environments/onnx-runtime/versions/1", {"image": "mcr.microsoft.com/azureml/"
                                                                              "minimal-ubuntu22.04-py39-cpu-inference"})
        service.add(f"{prod}/codes/onnx-score/versions/1", {"codeUri": "https://example/score"})
        running.client("prod").online_endpoints.begin_create_or_update(
            ManagedOnlineEndpoint(name=ENDPOINT, auth_mode="key"))
        platform = app_platform(running)
        model = running.register_model("prod", "credit-risk", good_model(seed=1))
        wait_until(lambda: running.client("prod").online_endpoints.get(ENDPOINT).provisioning_state == "Succeeded",
                   timeout=30, what="the endpoint to provision")
        for name in ("blue", "green"):
            platform.create_deployment("prod", ENDPOINT, name, model, DeploymentSpec(collect_predictions=True))
        client = running.client("prod")
        wait_until(lambda: all(client.online_deployments.get(name, ENDPOINT).provisioning_state == "Succeeded"
                               for name in ("blue", "green")), timeout=30, what="blue and green to provision")
        platform.set_traffic("prod", ENDPOINT, {"blue": 100}, {"green": 50})
        wait_until(lambda: client.online_endpoints.get(ENDPOINT).provisioning_state == "Succeeded", timeout=30)
        running.control("POST", f"/localaml{running.service.workspace_id('prod')}/onlineEndpoints/{ENDPOINT}"
                                f"/deployments/green/faults", {"flipRate": 1.0})
        yield running


def app_settings(local: LocalAzureMLStack) -> Settings:
    return Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local.app_settings()})


def app_platform(local: LocalAzureMLStack) -> AzureMLPlatform:
    return AzureMLPlatform.from_settings(app_settings(local))


def score(local: LocalAzureMLStack, requests_count: int) -> list[str]:
    """Score `requests_count` requests of two rows each; the request ids the endpoint answered with."""
    client = local.client("prod")
    key = client.online_endpoints.get_keys(ENDPOINT).primary_key
    uri = client.online_endpoints.get(ENDPOINT).scoring_uri
    ids = []
    for _ in range(requests_count):
        answer = requests.post(uri, json={"inputs": ROWS}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        ids.append(answer.headers["x-request-id"])
    collector.of(local.service).flush()
    return ids


def test_the_adapter_turns_the_data_collector_on_as_the_sdk_sends_it(local: LocalAzureMLStack) -> None:
    put = local.service.requests_to("PUT", r"/onlineEndpoints/credit-risk/deployments/blue$")[-1]
    sent = put.body["properties"]["dataCollector"]
    assert sent["rollingRate"] == "Hour" and set(sent["collections"]) == {"model_inputs", "model_outputs"}
    for name, collection in sent["collections"].items():
        # The SDK registers a data asset per collection at the collector's default folder, and names it.
        assert collection["dataCollectionMode"] == "enabled"
        assert collection["dataId"].endswith(f"/workspaces/prod/data/credit-risk-blue-{name}/versions/1")
        asset = local.client("prod").data.get(f"credit-risk-blue-{name}", "1")
        assert asset.path.rstrip("/").endswith(f"/paths/modelDataCollector/credit-risk/blue/{name}")


def test_scored_requests_are_collected_in_the_documented_layout_and_schema(local: LocalAzureMLStack) -> None:
    ids = score(local, 20)
    assert local.service.storage is not None
    container = local.service.storage.get_container_client(workspace_container("prod"))
    names = [blob.name for blob in container.list_blobs(name_starts_with="modelDataCollector/")]
    matched = [LAYOUT.match(name) for name in names]
    assert names and all(matched), names
    assert {(m["deployment"], m["collection"]) for m in matched if m} == {
        (d, c) for d in ("blue", "green") for c in ("model_inputs", "model_outputs")}

    blue_inputs = [n for n in names if "/blue/model_inputs/" in n]
    records = [json.loads(line) for name in blue_inputs for line in container.download_blob(name).readall()
               .splitlines()]
    assert all(set(record) == RECORD_KEYS for record in records)
    record = records[0]
    assert record["type"] == "azureml.inference.model_inputs" and record["specversion"] == "1.0"
    assert record["source"].endswith("/workspaces/prod/onlineEndpoints/credit-risk/deployments/blue")
    assert record["correlationid"] == record["xrequestid"] and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$",
                                                                        record["time"])
    size = len(json.dumps(record["data"], separators=(",", ":")).encode())
    assert record["contentrange"] == f"bytes 0-{size - 1}/{size}"
    rows = [row for record in records for row in record["data"]]
    # Requests close in time are batched into one record: each row carries its own id in a column.
    assert len(records) < len(ids) and {row["correlationid"] for row in rows} >= {f"{i}:0" for i in ids}
    assert set(rows[0]) == {"correlationid", *(f"f{i}" for i in range(8))}


def test_the_adapter_reads_the_rows_back_and_a_mirrored_copy_pairs_with_the_live_request(
    local: LocalAzureMLStack
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = score(local, 30)
    logs = CollectedPredictions.from_settings(app_settings(local))
    until = datetime.now(UTC) + timedelta(seconds=1)

    blue = logs.collected("prod", ENDPOINT, "blue", since, until)
    green = logs.collected("prod", ENDPOINT, "green", since, until)

    # Record times are whole seconds, and a batch takes its first row's: the window's first second may hold
    # the previous test's rows too, on one deployment and not the other. Only this test's requests are judged.
    ours = {f"{i}:{row}" for i in ids for row in (0, 1)}
    assert {row.id for row in blue} >= ours
    assert all(row.label in ("0", "1") and row.score is not None and 0 <= row.score <= 1 for row in blue)
    green = [row for row in green if row.id.split(":")[0] in ids]
    assert 0 < len(green) < len(ours), "green sees the mirrored share only, under the live requests' ids"
    by_id = {row.id: row for row in blue}
    assert all(row.id in ours for row in green), "a mirrored copy keeps the live request's id"
    assert all(row.label != by_id[row.id].label for row in green), "flipRate 1 answers the other class"
    assert all(row.score == pytest.approx(1 - (by_id[row.id].score or 0)) for row in green)
    assert logs.collected("prod", ENDPOINT, "blue", until, until + timedelta(seconds=5)) == []


def test_a_data_collector_the_rest_schema_does_not_allow_is_refused_naming_the_field(
    local: LocalAzureMLStack
) -> None:
    path = f"{local.service.workspace_id('prod')}/onlineEndpoints/{ENDPOINT}/deployments/bad"
    body = local.service.requests_to("PUT", r"/deployments/blue$")[-1].body
    for collector_settings, field in (
        ({"collections": {"model_inputs": {"dataCollectionMode": "enabled"}}, "rollingRate": "Week"},
         "dataCollector.rollingRate"),
        ({"collections": {"model_outputs": {"samplingRate": 2}}}, "dataCollector.collections.model_outputs"),
        ({"rollingRate": "Hour"}, "dataCollector.collections"),
    ):
        token = local.clients().arm_token()
        answer = requests.put(f"{local.url.rstrip('/')}{path}", params={"api-version": "2023-04-01-preview"},
                              json={**body, "properties": {**body["properties"], "dataCollector": collector_settings}},
                              headers={"Authorization": f"Bearer {token}"}, timeout=30,
                              verify=str(local.certificates.ca_file))
        assert answer.status_code == 400, answer.text
        assert field in answer.text
