"""Promotion end to end: a workspace model version shared to the registry by the real azure-ai-ml, answered as
Azure answers it, its files copied into the registry's container and downloaded from there again.

Sources: the import answers 202 with `Location` and `Retry-After` (the generated client, Azure/azure-sdk-for-python
sdk/ml/azure-ai-ml/azure/ai/ml/_restclient/v2021_10_01_dataplanepreview/operations/
_resource_management_asset_reference_operations.py, `final-state-via: location`) and `Azure-AsyncOperation` (Azure ML
docs, "Manage models with deployment templates", step 2); a dataref may answer `credentialType: NoCredentials`
(Azure/azure-rest-api-specs
.../stable/2025-12-01/examples/DataReference/getBlobReferenceSAS.json).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import ACCOUNT, ACCOUNT_KEY, running_azurite
from devhost.waiting import wait_until
from localaml import endpoints
from localaml.datastores import registry_container, workspace_container
from localaml.errors import Reply
from localaml.service import LocalAzureML, Route
from localaml.tls import Certificates
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import DeploymentSpec, ModelVersion, NotFound, PlatformError
from tests.contract.conftest import bearer

DEV = LocalAzureML.workspace_id("dev")
REGISTRY = "registry:mlops-registry"


@pytest.fixture(scope="module", autouse=True)
def storage(certificates: Certificates, service: LocalAzureML) -> Iterator[BlobServiceClient]:
    """The service's storage account: an Azurite over TLS with the certificate the service serves."""
    with running_azurite(tls=(str(certificates.cert_file), str(certificates.key_file))) as azurite:
        client = BlobServiceClient(
            f"https://127.0.0.1:{azurite.blob_port}/{ACCOUNT}",
            credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY},
        )
        service.storage = client
        try:
            yield client
        finally:
            service.storage = None


def _workspace_model(fake: LocalAzureML, storage: BlobServiceClient) -> ModelVersion:
    container = storage.get_container_client(workspace_container("dev"))
    container.upload_blob("models/churn/3/model.onnx", b"onnx bytes", overwrite=True)
    fake.add_model(
        DEV, "churn", "3", {"stage": "tested"},
        model_uri="azureml://subscriptions/s/resourceGroups/rg/workspaces/dev/datastores/workspaceblobstore"
        "/paths/models/churn/3/model.onnx",
    )
    return ModelVersion(location="dev", name="churn", version="3")


def test_a_promoted_model_is_in_the_registry_with_its_files(
    platform: AzureMLPlatform, fake: LocalAzureML, storage: BlobServiceClient, tmp_path: Path
) -> None:
    source = _workspace_model(fake, storage)

    promoted = platform.promote_model(source, REGISTRY)
    onnx = platform.download_model(promoted, tmp_path)

    assert promoted.uri == "azureml://registries/mlops-registry/models/churn/versions/3"
    assert promoted.tags == {"stage": "tested"}
    copied = storage.get_container_client(registry_container("mlops-registry"))
    assert copied.download_blob("models/churn/3/model.onnx").readall() == b"onnx bytes"
    assert onnx.read_bytes() == b"onnx bytes"
    assert fake.requests_to("PUT", r"/tempdatarefs/") == [], "the share's own path: no upload after the import"


def test_the_share_takes_the_sdks_normal_path_ending_on_the_location_get(
    platform: AzureMLPlatform, fake: LocalAzureML, storage: BlobServiceClient
) -> None:
    """The import's LRO ends on its `Location` (final-state-via: location) with an empty body, so azure-ai-ml
    reads the registry version and returns it: no temporary data reference, no upload, no error to recover from
    (before, the poll ended on the operation status's body and the SDK went on to a tempdataref)."""
    _workspace_model(fake, storage)
    client = platform._clients.dedicated("dev")

    shared = client.models.share("churn", "3", share_with_name="churn", share_with_version="3",
                                 registry_name="mlops-registry")

    assert (shared.name, shared.version) == ("churn", "3")
    [imported] = fake.requests_to("POST", r"/registries/mlops-registry/import$")
    after = [r.path for r in fake.requests[fake.requests.index(imported) + 1:]]
    polls = [path for path in after if "operation" in path.lower()]
    assert polls[0].startswith("/operations/") and polls[-1].startswith("/operationResults/"), polls
    assert fake.requests_to("PUT", r"/tempdatarefs/") == []


def test_an_import_onto_an_existing_registry_version_overwrites_it(
    fake: LocalAzureML, storage: BlobServiceClient
) -> None:
    """"If the destination resource exists, it will be overwritten" (the generated client's `begin_import_method`):
    before, the service answered 409 AssetExists in its own words."""
    _workspace_model(fake, storage)
    workspace = fake.resources[DEV.lower()]["properties"]["workspaceId"]
    path = (f"/mferp/managementfrontend{fake.registry_id('mlops-registry')}/import"
            "?api-version=2021-10-01-dataplanepreview")
    body = {"properties": {"referenceType": "Id", "destinationName": "churn", "destinationVersion": "3",
                           "sourceAssetId": f"azureml://locations/eastus/workspaces/{workspace}/models/churn/versions/3"}}
    first = fake.handle("POST", path, json.dumps(body).encode(), _auth(fake))
    storage.get_container_client(workspace_container("dev")).upload_blob(
        "models/churn/3/model.onnx", b"new bytes", overwrite=True)
    second = fake.handle("POST", path, json.dumps(body).encode(), _auth(fake))

    assert (first.status, second.status) == (202, 202)
    assert {"Location", "Retry-After", "Azure-AsyncOperation"} <= set(second.headers)
    copied = storage.get_container_client(registry_container("mlops-registry"))
    assert copied.download_blob("models/churn/3/model.onnx").readall() == b"new bytes"


def test_promoting_again_finds_the_registry_version_without_a_second_import(
    platform: AzureMLPlatform, fake: LocalAzureML, storage: BlobServiceClient
) -> None:
    source = _workspace_model(fake, storage)

    first = platform.promote_model(source, REGISTRY)
    again = platform.promote_model(source, REGISTRY)

    assert first == again
    assert len(fake.requests_to("POST", r"/registries/mlops-registry/import$")) == 1


def test_the_registry_refuses_a_temporary_reference_for_an_asset_it_has(
    platform: AzureMLPlatform, fake: LocalAzureML, storage: BlobServiceClient
) -> None:
    platform.promote_model(_workspace_model(fake, storage), REGISTRY)

    path = f"/mferp/managementfrontend{fake.registry_id('mlops-registry')}/tempdatarefs/churn/versions/3"
    answer = fake.handle("PUT", path + "?api-version=2021-10-01-dataplanepreview", b"{}", _auth(fake))

    assert answer.status == 409  # azure-ai-ml get_sas_uri_for_registry_asset: "Asset already exists" is a 409


LINEAGE = {"mlops.source_workspace": "dev", "mlops.test_job": "test-churn-v3", "mlops.rule": "churn"}


def test_the_registry_copy_carries_the_lineage_as_tags_set_after_the_import(
    platform: AzureMLPlatform, fake: LocalAzureML, storage: BlobServiceClient
) -> None:
    """The import carries only the source reference (azure-ai-ml `WorkspaceAssetReference`); the tags
    come by a PUT of the registry version (REST `RegistryModelVersions_CreateOrUpdate`)."""
    promoted = platform.promote_model(_workspace_model(fake, storage), REGISTRY, LINEAGE)
    read_back = platform.get_model(REGISTRY, "churn", "3")

    assert read_back.tags == {"stage": "tested", **LINEAGE} == promoted.tags
    [imported] = fake.requests_to("POST", r"/registries/mlops-registry/import$")
    assert set(imported.body["properties"]) == {"referenceType", "destinationName", "destinationVersion",
                                                "sourceAssetId"}
    [tagged] = fake.requests_to("PUT", r"/registries/mlops-registry/models/churn/versions/3$")
    assert tagged.body["properties"]["tags"] == {"stage": "tested", **LINEAGE}
    source = platform.get_model("dev", "churn", "3")
    assert source.tags == {"stage": "tested"}, "the workspace version keeps its own tags"


def test_promoting_again_with_the_same_lineage_writes_nothing(
    platform: AzureMLPlatform, fake: LocalAzureML, storage: BlobServiceClient
) -> None:
    source = _workspace_model(fake, storage)
    platform.promote_model(source, REGISTRY, LINEAGE)

    again = platform.promote_model(source, REGISTRY, LINEAGE)

    assert again.tags == {"stage": "tested", **LINEAGE}
    assert len(fake.requests_to("PUT", r"/registries/mlops-registry/models/churn/versions/3$")) == 1


def test_the_registry_refuses_a_changed_property_dictionary_but_takes_changed_tags(
    platform: AzureMLPlatform, fake: LocalAzureML, storage: BlobServiceClient
) -> None:
    """Only tags, description and isArchived (and stage) change on an existing version: the service's own
    words in azure-ai-ml `ASSET_PATH_ERROR`. A properties change is refused naming the field."""
    platform.promote_model(_workspace_model(fake, storage), REGISTRY)
    path = f"/mferp/managementfrontend{fake.registry_id('mlops-registry')}/models/churn/versions/3"
    url = path + "?api-version=2021-10-01-dataplanepreview"
    stored = fake.handle("GET", url, b"", _auth(fake)).body

    def put(change: dict[str, object]) -> Reply:
        return fake.handle("PUT", url, json.dumps({"properties": {**stored["properties"], **change}}).encode(),
                           _auth(fake))

    refused = put({"properties": {"mlops.rule": "churn"}})
    taken = put({"tags": {"mlops.rule": "churn"}, "description": "promoted"})
    after = fake.handle("GET", url, b"", _auth(fake)).body["properties"]

    assert refused.status == 400
    error = refused.body["error"]
    assert error["code"] == "UserError" and error["details"][0]["target"] == "properties"
    assert "Only tags, description, stage and isArchived can be updated" in error["message"]
    assert taken.status == 202
    assert (after["tags"], after["description"], after["properties"]) == ({"mlops.rule": "churn"}, "promoted", {})


def test_a_registry_version_put_is_an_asset_store_operation(fake: LocalAzureML) -> None:
    """On the registry's front end: 202, no body, `Location` and `x-ms-async-operation-timeout` (recorded:
    test_create_get_download_model_registry.json); the operation ends with the asset's id. On ARM, a new
    version is 201 with `Azure-AsyncOperation` (REST reference "Registry Model Versions - Create Or Update")."""
    arm = f"{fake.registry_id('mlops-registry')}/models/fresh/versions/1"
    body = json.dumps({"properties": {"modelUri": "https://regstore.blob.core.windows.net/fresh/1"}}).encode()

    front = fake.handle("PUT", f"/mferp/managementfrontend{arm}?api-version=2021-10-01-dataplanepreview", body,
                        _auth(fake))
    done = fake.handle("GET", urlsplit(front.headers["Location"]).path, b"", _auth(fake))
    direct = fake.handle("PUT", arm.replace("/versions/1", "/versions/2") + "?api-version=2025-12-01", body,
                         _auth(fake))

    assert (front.status, front.body, front.headers["x-ms-async-operation-timeout"]) == (202, None, "PT1H")
    assert (done.status, done.body) == (200, {"assetId": "azureml://registries/mlops-registry/models/fresh/versions/1"})
    assert direct.status == 201 and "/mfeOperationsStatus/" in direct.headers["Azure-AsyncOperation"]


def _auth(fake: LocalAzureML) -> dict[str, str]:
    """The app's bearer token for Resource Manager, as the SDK sends it."""
    return bearer(fake, "https://management.azure.com/")


def test_a_failed_import_is_a_platform_error_naming_the_share(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_model(DEV, "churn", "3")
    fake.fail("POST", r"/registries/mlops-registry/import$", 400, code="UserError", message="bad source")

    with pytest.raises(PlatformError, match=r"sharing churn:3 to registry:mlops-registry \(400\)"):
        platform.promote_model(ModelVersion(location="dev", name="churn", version="3"), REGISTRY)
    with pytest.raises(NotFound):
        platform.get_model(REGISTRY, "churn", "3")


def test_a_dataref_without_credentials_is_a_platform_error_naming_the_download(
    platform: AzureMLPlatform, fake: LocalAzureML, tmp_path: Path
) -> None:
    """The spec example answers `NoCredentials`; azure-ai-ml then raises a bare KeyError('sasUri')."""
    fake.add_model(fake.registry_id("mlops-registry"), "churn", "3",
                   model_uri="https://regstore.blob.core.windows.net/churn/model")
    no_credentials = Route("POST", re.compile(r"^/mferp/.+/datarefs/churn/versions/3$"), lambda **kw: Reply(
        200, {"blobReferenceForConsumption": {"blobUri": kw["body"]["blobUri"], "storageAccountArmId": "string",
                                              "credential": {"credentialType": "NoCredentials"}}}))
    fake.routes.insert(0, no_credentials)
    try:
        model = platform.get_model(REGISTRY, "churn", "3")
        with pytest.raises(PlatformError, match=r"downloading model churn:3: KeyError: 'sasUri'"):
            platform.download_model(model, tmp_path)
    finally:
        fake.routes.remove(no_credentials)


def test_no_sdk_poller_thread_is_left_by_starting_operations(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_online_endpoint("dev", "churn-ep", {"blue": 100})
    fake.add_online_deployment("dev", "churn-ep", "blue", f"{DEV}/models/churn/versions/2")
    fake.add_online_deployment("dev", "churn-ep", "old", f"{DEV}/models/churn/versions/1")
    fake.add_model(fake.registry_id("mlops-registry"), "churn", "3")
    model = ModelVersion(location=REGISTRY, name="churn", version="3",
                         uri="azureml://registries/mlops-registry/models/churn/versions/3")
    timings = endpoints.online(fake)
    timings.endpoint_update_seconds = timings.delete_seconds = timings.deployment_create_seconds = 0.0

    def settled() -> bool:
        # Azure refuses a change while another runs on the endpoint; each call starts one and returns.
        return not platform.get_endpoint("dev", "churn-ep").is_updating

    platform.set_traffic("dev", "churn-ep", {"blue": 90, "old": 10}, {})
    wait_until(settled, timeout=10, interval=0.05)
    platform.set_traffic("dev", "churn-ep", {"blue": 100}, {})
    wait_until(settled, timeout=10, interval=0.05)
    platform.delete_deployment("dev", "churn-ep", "old")
    wait_until(settled, timeout=10, interval=0.05)
    platform.create_deployment("dev", "churn-ep", "green", model, DeploymentSpec())

    pollers = [thread.name for thread in threading.enumerate() if thread.name.startswith("LROPoller")]
    assert pollers == []
    assert [r.method for r in fake.requests if re.search(r"/onlineEndpoints/churn-ep(/deployments/\w+)?$", r.path)
            and r.method != "GET"] == ["PUT", "PUT", "DELETE", "PUT"]
    assert fake.requests_to("GET", r"operation") == [], "nothing polls the operations"
