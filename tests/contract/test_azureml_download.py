"""Contract of `download_model` for a registry model: the fake registry hands out a SAS URL of a real
Azurite container, and the real azure-ai-ml downloads the model's files from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from devhost.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform


def test_download_a_registry_model_from_its_container(
    platform: AzureMLPlatform, fake: LocalAzureML, azurite: Azurite, tmp_path: Path
) -> None:
    container = f"churn-3-{datetime.now(UTC):%H%M%S%f}"
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    blobs.upload_blob("model/model.onnx", b"onnx bytes")
    blobs.upload_blob("model/MLmodel", b"flavors: {}")
    sas = generate_container_sas(
        ACCOUNT, container, account_key=ACCOUNT_KEY, permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    fake.blob_sas[("churn", "3")] = f"http://127.0.0.1:{azurite.blob_port}/{ACCOUNT}/{container}?{sas}"
    fake.add_model(
        fake.registry_id("mlops-registry"), "churn", "3",
        model_uri=f"https://regstore.blob.core.windows.net/{container}/model",
    )
    model = platform.get_model("registry:mlops-registry", "churn", "3")

    onnx = platform.download_model(model, tmp_path)

    assert onnx.read_bytes() == b"onnx bytes"
    assert onnx.is_relative_to(tmp_path)
    [dataref] = fake.requests_to("POST", r"/registries/mlops-registry/datarefs/churn/versions/3$")
    assert dataref.api_version == "2021-10-01-dataplanepreview"
    assert dataref.body == {
        "assetId": "azureml://registries/mlops-registry/models/churn/versions/3",
        "blobUri": f"https://regstore.blob.core.windows.net/{container}/model",
    }
