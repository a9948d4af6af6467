"""Settings: one validated object, and an error that names every bad setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_local_defaults_are_valid() -> None:
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert settings.azureml_endpoint is None  # Azure's own endpoints
    assert settings.state_container == "mlops-state"


def test_the_error_names_every_missing_or_invalid_setting() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({"MLOPS_SCORING_BATCH_ROWS": "0", "MLOPS_WORKSPACES": "dev=/not/a/workspace"})
    message = str(caught.value)
    assert "MLOPS_SCORING_BATCH_ROWS" in message
    assert "MLOPS_WORKSPACES" in message and "not a workspace resource id" in message


def test_the_local_azure_ml_endpoint_is_an_https_loopback_url() -> None:
    """The app sends its Resource Manager tokens to MLOPS_AZUREML_ENDPOINT: only a local service may be there."""
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    with pytest.raises(SettingsError, match="loopback"):
        Settings.from_environ({**base, "MLOPS_AZUREML_ENDPOINT": "https://management.azure.com/"})
    with pytest.raises(SettingsError, match="https://"):
        Settings.from_environ({**base, "MLOPS_AZUREML_ENDPOINT": "http://127.0.0.1:8443/"})
    assert Settings.from_environ({**base, "MLOPS_AZUREML_ENDPOINT": "https://127.0.0.1:8443/"}).azureml_endpoint


def test_a_client_secret_names_its_service_principal_and_stays_out_of_repr() -> None:
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_CLIENT_SECRET": "s3cret"}
    with pytest.raises(SettingsError, match="AZURE_TENANT_ID and AZURE_CLIENT_ID"):
        Settings.from_environ({**base, "AZURE_CLIENT_ID": "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"})
    with pytest.raises(SettingsError, match="AZURE_AUTHORITY_HOST must be an https"):
        Settings.from_environ({**base, "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c",
                               "AZURE_AUTHORITY_HOST": "http://127.0.0.1:8444"})
    settings = Settings.from_environ({**base, "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c",
                                      "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8444"})
    assert settings.azure_client_secret == "s3cret" and "s3cret" not in repr(settings)


def test_storage_must_be_configured_one_way_or_the_other() -> None:
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        Settings.from_environ({})
    identity = Settings.from_environ(
        {
            "AzureWebJobsStorage__blobServiceUri": "https://st.blob.core.windows.net",
            "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net",
        }
    )
    assert identity.storage_connection is None


def test_workspaces_parse_from_one_app_setting() -> None:
    workspace = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"
    settings = Settings.from_environ(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "MLOPS_WORKSPACES": f"dev={workspace}, prod={workspace}2"}
    )
    assert settings.workspaces == {"dev": workspace, "prod": workspace + "2"}


def test_the_example_settings_file_lists_every_setting_the_code_reads() -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert set(Settings.names()) <= set(example)
    assert example["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    Settings.from_environ(example)
