"""The local Azure ML service's state file: what `./dev host` keeps across restarts, and how
work that was in flight when it stopped ends (its runner processes and timers are gone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.localaml import StateSaver
from localaml import endpoints, mlflow
from localaml.service import RESTARTED, LocalAzureML, restore_state, state_text


def service(port: int) -> LocalAzureML:
    made = LocalAzureML(token_secret=f"secret-{port}")
    made.base_url = f"https://127.0.0.1:{port}/"
    return made


def before() -> LocalAzureML:
    old = service(8443)
    old.add_workspace("dev")
    old.add_model(old.workspace_id("dev"), "credit-risk", "1", tags={"team": "risk"})
    old.add_online_endpoint("dev", "live", {"live-v1": 100})
    old.add_online_endpoint("dev", "going", {}, state="Deleting")
    old.add_online_endpoint("dev", "coming", {}, state="Creating")
    jobs = f"{old.workspace_id('dev')}/jobs"
    old.add(f"{jobs}/done", {"status": "Completed", "jobType": "Pipeline"})
    old.add(f"{jobs}/running", {"status": "Running", "jobType": "Pipeline"})
    mlflow.new_run(old, "running", "experiment", "running", status="RUNNING")
    old.start_operation(f"{old.workspace_id('dev')}/onlineEndpoints/coming", status="Creating")
    endpoints.online(old).keys["live"] = ("primary", "secondary")
    return old


def test_a_restored_service_has_the_resources_keys_and_token_at_its_new_address() -> None:
    old = before()
    new = service(9443)
    restore_state(new, state_text(old))
    assert new.token_secret == "secret-8443"
    model = new.resources[f"{new.workspace_id('dev')}/models/credit-risk/versions/1".lower()]
    assert model["properties"]["tags"] == {"team": "risk"}
    assert endpoints.online(new).keys["live"] == ("primary", "secondary")
    live = new.resources[f"{new.workspace_id('dev')}/onlineEndpoints/live".lower()]
    assert live["properties"]["scoringUri"] == "https://127.0.0.1:9443/score/live"
    assert "8443" not in json.dumps(new.resources)


def test_work_in_flight_when_the_service_stopped_ends_failed() -> None:
    new = service(8443)
    restore_state(new, state_text(before()))
    jobs = f"{new.workspace_id('dev')}/jobs".lower()
    assert new.resources[f"{jobs}/done"]["properties"]["status"] == "Completed"
    running = new.resources[f"{jobs}/running"]["properties"]
    assert running["status"] == "Failed" and running["properties"]["azureml.restartError"] == RESTARTED
    assert new.runs["running"]["info"]["status"] == "FAILED"
    endpoints_path = f"{new.workspace_id('dev')}/onlineEndpoints".lower()
    assert f"{endpoints_path}/going" not in new.resources
    assert new.resources[f"{endpoints_path}/coming"]["properties"]["provisioningState"] == "Failed"
    [operation] = new.operations.values()
    assert operation.status == "Failed" and operation.end and operation.error["message"] == RESTARTED


def test_the_saver_writes_on_change_only_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    old = before()
    path = tmp_path / "state.json"
    saver = StateSaver(old, path, interval=3600)
    assert saver.save() and not saver.save()
    old.add_model(old.workspace_id("dev"), "credit-risk", "2")
    assert saver.save()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert path.stat().st_mode & 0o777 == 0o600
    restored = service(8443)
    restore_state(restored, path.read_text())
    assert f"{restored.workspace_id('dev')}/models/credit-risk/versions/2".lower() in restored.resources


def test_the_state_folders_are_neither_committed_nor_deployed() -> None:
    """They hold the host keys, the service's token and endpoint keys, and Azurite's data."""
    root = Path(__file__).resolve().parents[2]
    for listing in (".gitignore", ".funcignore"):
        lines = (root / listing).read_text().splitlines()
        assert {".localdev/", ".localaml/"} <= set(lines), listing


def test_a_state_file_of_another_format_is_refused_by_name() -> None:
    document = json.loads(state_text(before()))
    document["format"] = 99
    with pytest.raises(ValueError, match="state format 99 is not 1"):
        restore_state(service(8443), json.dumps(document))
