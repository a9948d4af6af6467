"""Model versions in the local Azure ML service, through the real azure-ai-ml: a person registers a
local ONNX file (the SDK uploads it to the workspace's datastore, a TLS Azurite reached by its
storage host name through the proxy), the workspace publishes ModelRegistered, and the app's
adapter downloads the same bytes back. A version promoted to the registry is answered in the
registry's own shape (source: Azure/azure-sdk-assets, python/sdk/ml/azure-ai-ml/tests/recordings/
model/e2etests/test_model.pyTestModeltest_create_get_download_model_registry.json, its version GETs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devhost.localaml import LocalAzureMLStack, running_local_azureml
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import ConfigurationError, ModelVersion
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

ARM = "https://management.azure.com/.default"

# What the registry answers in a model version's properties, and nothing else (the recording above): no stage
# and no provisioningState, unlike a workspace version.
REGISTRY_VERSION_PROPERTIES = {
    "description", "tags", "properties", "isArchived", "isAnonymous", "flavors", "modelType", "modelUri",
    "originAssetId", "jobName", "intellectualProperty",
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzureMLStack]:
    with running_local_azureml(tmp_path_factory.mktemp("localaml"), seed_workspaces=False) as running:
        for workspace in ("dev", "prod"):
            running.service.add_workspace(workspace)
        service = running.service
        service.add(service.registry_id(running.registry), {"discoveryUrl": service.base_url}, location="eastus")
        yield running


@pytest.fixture
def platform(local: LocalAzureMLStack) -> AzureMLPlatform:
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local.app_settings()})
    return AzureMLPlatform.from_settings(settings)


def test_a_registered_file_is_uploaded_announced_and_downloads_back(
    local: LocalAzureMLStack, platform: AzureMLPlatform, tmp_path: Path
) -> None:
    first = local.register_model("dev", "uploaded", b"onnx bytes v1", {"team": "risk"})
    second = local.register_model("dev", "uploaded", b"onnx bytes v2", {"team": "risk"})

    assert (first.version, second.version) == ("1", "2")  # numbered from the model's container, as the SDK asks it
    model = platform.get_model("dev", "uploaded", "2")
    assert model.tags == {"team": "risk"}
    assert platform.get_model("dev", "uploaded", "latest").version == "2"
    assert platform.download_model(model, tmp_path).read_bytes() == b"onnx bytes v2"
    announced = [e for e in local.service.events.published if e["subject"].startswith("models/uploaded:")]
    assert [(e["eventType"], e["data"]["ModelVersion"]) for e in announced] == [
        ("Microsoft.MachineLearningServices.ModelRegistered", 1),
        ("Microsoft.MachineLearningServices.ModelRegistered", 2),
    ]
    assert announced[0]["topic"] == local.service.workspace_id("dev")


def test_tag_changes_announce_nothing_and_a_changed_path_is_refused(
    local: LocalAzureMLStack, platform: AzureMLPlatform
) -> None:
    version = local.register_model("dev", "tagged", b"onnx", {}).version
    published = len(local.service.events.published)

    platform.set_model_tags("dev", "tagged", version, {"mlops.stage": "testing"})

    assert platform.get_model("dev", "tagged", version).tags == {"mlops.stage": "testing"}
    assert len(local.service.events.published) == published
    from azure.ai.ml.entities import Model

    client = local.client("dev")
    moved = Model(name="tagged", version=version, path="azureml://datastores/workspaceblobstore/paths/elsewhere/m.onnx")
    # Azure keeps a version's data URI; only tags, description and isArchived change (azure-ai-ml ASSET_PATH_ERROR).
    with pytest.raises(Exception, match="existing asset's data uri cannot be changed"):
        client.models.create_or_update(moved)


def test_a_registry_version_is_answered_in_the_registrys_shape_and_the_sdk_reads_it(
    local: LocalAzureMLStack, platform: AzureMLPlatform
) -> None:
    """GET, list and the state a tags PUT leaves: type `models`, the model's name as `name`, the azureml:// id with
    the registry's name in lower case, originAssetId, jobName and intellectualProperty null (none of them is
    shown set on a copy by any public source), no stage or provisioningState."""
    source = local.register_model("dev", "shaped", b"onnx", {"team": "risk"})
    target = f"registry:{local.registry}"
    promoted = platform.promote_model(ModelVersion(location="dev", name="shaped", version=source.version), target,
                                      {"mlops.source": "dev"})
    versions = f"/mferp/managementfrontend{local.service.registry_id(local.registry)}/models/shaped/versions"
    query = "?api-version=2021-10-01-dataplanepreview"

    got = local.control("GET", f"{versions}/{promoted.version}{query}")
    [listed] = local.control("GET", f"{versions}{query}")["value"]

    for answer in (got, listed):
        assert (answer["id"], answer["name"], answer["type"]) == (
            f"azureml://registries/{local.registry.lower()}/models/shaped/versions/{promoted.version}", "shaped",
            "models",
        )
        assert set(answer["properties"]) == REGISTRY_VERSION_PROPERTIES
        properties = answer["properties"]
        assert (properties["originAssetId"], properties["jobName"], properties["intellectualProperty"]) == (
            None, None, None
        )
        assert properties["tags"] == {"team": "risk", "mlops.source": "dev"}, "the PUT's final state"
    registry = local.client(target)
    parsed = registry.models.get("shaped", promoted.version)
    assert (parsed.name, parsed.version, parsed.tags["mlops.source"]) == ("shaped", promoted.version, "dev")
    assert [m.version for m in registry.models.list("shaped")] == [promoted.version]
    assert platform.get_model(target, "shaped", "latest").uri == (
        f"azureml://registries/{local.registry}/models/shaped/versions/{promoted.version}"
    )


def test_a_registry_version_a_job_registered_names_its_job_in_the_registrys_shape(
    local: LocalAzureMLStack, platform: AzureMLPlatform
) -> None:
    """A job's registered output in a registry: jobName is the job's (the field the recording answers null
    when nothing set it), the rest as the registry answers any version."""
    from localaml.models import register_version

    scope = local.service.registry_id(local.registry)
    register_version(local.service, scope, "from-job", {"model.onnx": b"onnx"}, job_name="train-7")
    path = f"/mferp/managementfrontend{scope}/models/from-job/versions/1"

    got = local.control("GET", f"{path}?api-version=2021-10-01-dataplanepreview")

    assert (got["type"], got["name"], got["properties"]["jobName"]) == ("models", "from-job", "train-7")
    assert set(got["properties"]) == REGISTRY_VERSION_PROPERTIES
    assert platform.get_model(f"registry:{local.registry}", "from-job", "1").job_name == "train-7"


def test_a_person_registers_under_their_own_name_and_the_app_under_its_own(local: LocalAzureMLStack) -> None:
    """Each caller's Entra ID token names them in systemData: a person's `upn`, the app's client id (`appid`)."""
    from devhost.localaml import register_model_version

    by_alice = register_model_version(local.client_as("dev", "alice@contoso.test"), "dev", "signed", b"onnx")
    by_app = local.register_model("dev", "signed", b"onnx again")
    stored = local.service.resources
    path = f"{local.service.workspace_id('dev')}/models/signed/versions".lower()
    alice, app = (stored[f"{path}/{version.version}"]["systemData"] for version in (by_alice, by_app))
    assert (alice["createdBy"], alice["createdByType"]) == ("alice@contoso.test", "User")
    assert (app["createdBy"], app["createdByType"]) == (local.entra.app_client_id, "Application")
    assert local.app_settings()["AZURE_CLIENT_SECRET"] == local.entra.app_client_secret
    assert "MLOPS_AZUREML_LOCAL_TOKEN" not in local.app_settings()


class _Recording:
    """The app's own credential, noting the scopes asked of it."""

    def __init__(self, credential: TokenCredential) -> None:
        self.credential = credential
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes += scopes
        return self.credential.get_token(*scopes, **kwargs)


def test_an_identity_mode_workspace_reads_files_with_the_apps_own_token_never_a_key(
    local: LocalAzureMLStack, tmp_path: Path
) -> None:
    """`systemDatastoresAuthMode: identity` (recorded: Azure/azure-sdk-assets ... test_online_deployment.py
    TestOnlineDeploymenttest_online_deployment_update.json, a workspace GET): the datastore stores no credentials
    and listSecrets is refused, so azure-ai-ml reads the files with the caller's own storage token
    (`get_datastore_info`). Before, the workspace answered no mode and listSecrets handed out the account key.

    The local storage account (Azurite) cannot check the local tenant's tokens, so the read itself is refused,
    as Azure refuses it to an identity without a Storage Blob Data role: the app names the role to grant
    (infra grants it in Azure: infra/modules/storage-data-role.bicep)."""
    from localaml.datastores import identity_based

    local.register_model("dev", "secured", b"onnx bytes", {})
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local.app_settings()})
    platform = AzureMLPlatform.from_settings(settings)
    credential = _Recording(platform._clients.credential)
    platform = AzureMLPlatform(settings, credential=credential, cloud=platform._clients.cloud)
    before = len(local.service.requests_to("POST", r"/listSecrets$"))
    identity_based(local.service, "dev")
    try:
        mode = platform._clients.ml("dev").workspaces.get("dev").system_datastores_auth_mode
        with pytest.raises(ConfigurationError, match=r"Storage Blob Data Reader on the workspace's storage account"):
            platform.download_model(ModelVersion(location="dev", name="secured", version="1"), tmp_path)
        refused = local.service.handle(
            "POST", f"{local.service.workspace_id('dev')}/datastores/workspaceblobstore/listSecrets"
            "?api-version=2024-04-01", b"", {"Authorization": f"Bearer {credential.get_token(ARM).token}"})
    finally:
        identity_based(local.service, "dev", identity=False)

    assert mode == "identity"
    assert len(local.service.requests_to("POST", r"/listSecrets$")) == before + 1, "the SDK asked for no key"
    assert (refused.status, refused.body["error"]["details"][0]["code"]) == (400, "NoSecrets")
    assert "https://storage.azure.com/.default" in credential.scopes


def test_a_model_folder_uploads_to_the_registry_and_downloads_back(local: LocalAzureMLStack, tmp_path: Path) -> None:
    """azure-ai-ml's test_model.py::test_create_get_download_model_registry, re-expressed: a folder registered
    straight into the registry (tempdataref, upload, version PUT). Before, the tempdataref's container did not
    exist yet: every file's upload failed and the SDK, reading its upload threads' results only when it shows
    progress, waited for ever (localaml/registries.py, `_ensure_container`)."""
    import threading

    from azure.ai.ml.entities import Model

    folder = tmp_path / "folder-model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    (folder / "sub" / "conda.yml").write_text("name: scoring\n")
    registry = local.clients().ml(f"registry:{local.registry}")
    done: list[Model] = []
    upload = threading.Thread(target=lambda: done.append(registry.models.create_or_update(
        Model(name="folder-model", version="1", path=str(folder)))), daemon=True)
    upload.start()
    upload.join(timeout=30)

    assert done, "the folder upload did not finish in 30 s"
    registry.models.download("folder-model", "1", download_path=str(tmp_path / "back"))
    back = {p.relative_to(tmp_path / "back").as_posix(): p.read_bytes() for p in (tmp_path / "back").rglob("*")
            if p.is_file()}
    assert sorted(back.values()) == [b"name: scoring\n", b"onnx bytes"], back
