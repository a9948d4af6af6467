"""The sample events in `samples/*/` are ones `./dev send` can act on: each parses, comes from a
workspace the local stack watches, and names something the repo's policy acts on (issue 16: the
fixtures from the docs came from a workspace no rule watches). Each folder's name says what it
starts: `samples/events`, which the README's by-hand path sends right after `./dev register`, starts
no retraining (issue 26: it once held the drift sample, and a newcomer got a v2 nobody asked for)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.localaml import WORKSPACES
from localaml.service import LocalAzureML
from shared.domain.events import DriftData, EventKind, ModelDeployedData, ModelRegisteredData, RunData, parse_event
from shared.domain.policy import load_policy
from tools.send_events import load

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
FILES = sorted(SAMPLES.glob("*/*.json"))
WATCHED = {LocalAzureML.workspace_id(name).lower(): name for name in WORKSPACES}
POLICY = load_policy(str(ROOT / "policy" / "policy.yaml"))


def test_there_are_samples_of_both_schemas_and_every_kind_the_local_stack_acts_on() -> None:
    events = [parse_event(raw) for raw in load(FILES)]
    assert {event.schema_name for event in events} == {"eventgrid", "cloudevents"}
    assert {event.kind for event in events} >= {EventKind.MODEL_REGISTERED, EventKind.RUN_COMPLETED,
                                                 EventKind.DATASET_DRIFT_DETECTED, EventKind.MODEL_DEPLOYED}
    assert len({event.dedupe_key for event in events}) == len(events), "a duplicate would be dropped by the ledger"


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_each_sample_parses_and_names_a_watched_workspace(path: Path) -> None:
    document = json.loads(path.read_text())
    raws = document if isinstance(document, list) else [document]
    assert raws
    for raw in raws:
        event = parse_event(raw)
        assert event.workspace.resource_id.lower() in WATCHED, f"{path.name}: {event.workspace.name} is not watched"
        expected_schema = "cloudevents" if ".cloudevents." in path.name else "eventgrid"
        assert event.schema_name == expected_schema
        if event.schema_name == "cloudevents":
            assert "specversion" in raw, "the CloudEvents spec spells the attribute specversion"
            assert raw["specversion"] == "1.0"


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_each_sample_names_what_the_policy_acts_on(path: Path) -> None:
    for raw in load([path]):
        event = parse_event(raw)
        workspace = WATCHED[event.workspace.resource_id.lower()]
        data = event.data
        if isinstance(data, ModelRegisteredData):
            rule = POLICY.rule_for_model(data.model_name, data.model_tags)
            assert rule is not None and rule.source_workspace == workspace
        elif isinstance(data, RunData):
            assert workspace == "dev" and data.run_id == f"test-{data.run_tags['mlops.model']}-v1"
        elif isinstance(data, DriftData):
            rule = POLICY.rule_for_monitor(data.data_drift_name)
            assert rule is not None and rule.drift is not None
            assert data.drift_coefficient >= rule.drift.threshold, "below the threshold it would only be recorded"
        else:
            assert isinstance(data, ModelDeployedData) and workspace == "prod"


def test_the_events_the_by_hand_path_sends_first_start_no_retraining_and_deploy_nothing() -> None:
    kinds = {parse_event(raw).kind for raw in load([SAMPLES / "events"])}
    assert kinds == {EventKind.MODEL_REGISTERED, EventKind.RUN_COMPLETED}
    assert {parse_event(raw).kind for raw in load([SAMPLES / "drift"])} == {EventKind.DATASET_DRIFT_DETECTED}
    assert {parse_event(raw).kind for raw in load([SAMPLES / "deployed"])} == {EventKind.MODEL_DEPLOYED}


def test_the_validation_sample_is_an_event_grid_handshake() -> None:
    [event] = json.loads((ROOT / "samples" / "subscription-validation.json").read_text())
    assert event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert event["data"]["validationCode"]


def test_sending_a_file_that_does_not_exist_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from tools.send_events import main

    with pytest.raises(SystemExit) as stopped:
        main(["samples/nope.json", "--url", "http://127.0.0.1:9", "--key", "k"])
    assert stopped.value.code == 2
    assert "no such file or folder: samples/nope.json" in capsys.readouterr().err


def test_registering_a_file_that_is_no_onnx_model_is_refused_saying_why(tmp_path: Path) -> None:
    from localaml import samples
    from tools.register_model import model_bytes

    not_a_model = tmp_path / "passwd"
    not_a_model.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(SystemExit, match=r"--file .*passwd: not an ONNX model ONNX Runtime can load"):
        model_bytes(not_a_model, "good")
    model = tmp_path / "model.onnx"
    model.write_bytes(samples.good_model())
    assert model_bytes(model, "good") == model.read_bytes()
