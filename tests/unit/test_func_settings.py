"""`python -m devhost.localaml --settings local.settings.json` writes the app settings of this run of the local
Azure ML service into Core Tools' file at each start (issue 26: the storage proxy's port and the app's secret
changed at every start, and `local.settings.json` had to be edited by hand each time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.localaml import EXAMPLE_SETTINGS, write_settings

RUN = {"MLOPS_AZUREML_ENDPOINT": "https://127.0.0.1:8443/", "HTTPS_PROXY": "http://127.0.0.1:40001",
       "AZURE_CLIENT_SECRET": "first"}


def test_the_first_start_makes_the_file_from_the_example(tmp_path: Path) -> None:
    path = write_settings(tmp_path / "local.settings.json", RUN)
    written = json.loads(path.read_text())
    example = json.loads(EXAMPLE_SETTINGS.read_text())
    assert written["Values"] == {**example["Values"], **RUN}
    assert path.stat().st_mode & 0o777 == 0o600, "it holds the app's client secret"


def test_a_later_start_updates_this_run_s_values_and_keeps_the_user_s(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    write_settings(path, RUN)
    document = json.loads(path.read_text())
    document["Values"]["MLOPS_NOTIFY_WEBHOOK_URL"] = "https://hooks.example/ops"
    document["Host"] = {"LocalHttpPort": 7071}
    path.write_text(json.dumps(document))
    write_settings(path, {**RUN, "HTTPS_PROXY": "http://127.0.0.1:40002", "AZURE_CLIENT_SECRET": "second"})
    again = json.loads(path.read_text())
    assert again["Values"]["HTTPS_PROXY"] == "http://127.0.0.1:40002"
    assert again["Values"]["AZURE_CLIENT_SECRET"] == "second"
    assert again["Values"]["MLOPS_NOTIFY_WEBHOOK_URL"] == "https://hooks.example/ops"
    assert again["Host"] == {"LocalHttpPort": 7071}


def test_a_file_that_is_no_settings_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text('{"Values": ["not", "an", "object"]}')
    with pytest.raises(SystemExit, match="no Values object"):
        write_settings(path, RUN)
    assert path.read_text() == '{"Values": ["not", "an", "object"]}'
