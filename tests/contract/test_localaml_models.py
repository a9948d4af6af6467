"""Model versions in the local Azure ML service, through the real azure-ai-ml: a person registers a
local ONNX file (the SDK uploads it to the workspace's datastore, a TLS Azurite reached by its
storage host name through the proxy), the workspace publishes ModelRegistered, and the app's
adapter downloads the same bytes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localaml.run import LocalAzureMLStack, running_local_azureml
from shared.platform.azureml import AzureMLPlatform
from shared.settings import Settings


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzureMLStack]:
    with running_local_azureml(tmp_path_factory.mktemp("localaml"), seed_workspaces=False) as running:
        for workspace in ("dev", "prod"):
            running.service.add_workspace(workspace)
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
