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


def test_the_local_token_only_goes_to_a_loopback_https_endpoint() -> None:
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "MLOPS_AZUREML_LOCAL_TOKEN": "secret"}
    with pytest.raises(SettingsError, match="never sent anywhere else"):
        Settings.from_environ({**base, "MLOPS_AZUREML_ENDPOINT": "https://management.azure.com/"})
    with pytest.raises(SettingsError, match="needs MLOPS_AZUREML_ENDPOINT"):
        Settings.from_environ(base)
    with pytest.raises(SettingsError, match="https://"):
        Settings.from_environ({**base, "MLOPS_AZUREML_ENDPOINT": "http://127.0.0.1:8443/"})
    local = Settings.from_environ({**base, "MLOPS_AZUREML_ENDPOINT": "https://127.0.0.1:8443/"})
    assert "secret" not in repr(local)


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
