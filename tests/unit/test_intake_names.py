"""Intake rejects what can never succeed, naming the field, and keeps it in `records/rejected/`: a run id that
cannot be an Azure ML job name, model ids that cannot be Azure ML names, and any field nested deeper than the
local host's JSON parser goes (a delivery the host once refused whole with 400, keeping nothing).

On fakes: the app's typed stores on the in-memory state store, a queue that keeps what it is sent."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from devhost import webhooks
from shared.adapters.storage.stores import Stores
from shared.domain.events import MalformedEvent, parse_event
from shared.domain.names import ASSET_NAME, JOB_NAME
from shared.reactor import intake
from shared.reactor.intake import Outcome
from tests.conftest import FIXTURES
from tests.unit.test_isolation_fakes import START, FakeState


class Queue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, item: dict[str, Any]) -> None:
        self.sent.append(item)


def event(kind: str, **data: object) -> dict[str, Any]:
    raw = json.loads((FIXTURES / f"aml-events/docs_eventgrid_schema/{kind}.json").read_text())[0]
    raw["id"] = str(uuid.uuid4())
    raw["data"].update(data)
    return raw


def received(raw: dict[str, Any]) -> tuple[Outcome, Stores, Queue]:
    state, queue = Stores(FakeState()), Queue()  # type: ignore[arg-type]
    outcome = intake.receive(copy.deepcopy(raw), state, queue, clock=lambda: START)  # type: ignore[arg-type]
    return outcome, state, queue


def rejection(state: Stores, raw: dict[str, Any]) -> str:
    kept = state.set_aside["rejected"].get(intake.dedupe_key(raw))
    assert kept is not None, "a rejected event is kept in records/rejected/"
    return kept.reason


@pytest.mark.parametrize("kind", ["run_completed", "run_status_changed"])
@pytest.mark.parametrize("run_id", ["x..y", "run.1", "a/b", "-lead", "x" * 256])
def test_a_run_whose_id_cannot_be_an_azure_ml_job_name_is_rejected_naming_the_field(kind: str, run_id: str) -> None:
    """`x..y` passed intake, then every attempt failed in the adapter (`job name 'x..y' must match ...`)."""
    raw = event(kind, RunId=run_id)
    outcome, state, queue = received(raw)
    assert outcome is Outcome.REJECTED and queue.sent == []
    reason = rejection(state, raw)
    assert "data.runId" in reason and JOB_NAME.pattern in reason, reason


@pytest.mark.parametrize("kind", ["run_completed", "run_status_changed"])
@pytest.mark.parametrize("run_id", ["sincere_plum_7x2v", "AutoML_0a1b-2c", "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"])
def test_runs_named_as_azure_ml_names_jobs_are_queued(kind: str, run_id: str) -> None:
    outcome, _, queue = received(event(kind, RunId=run_id))
    assert outcome is Outcome.QUEUED and len(queue.sent) == 1


@pytest.mark.parametrize("data, field", [
    ({"ModelName": "credit/risk"}, "data.modelName"),
    ({"ModelName": "x" * 256}, "data.modelName"),
    ({"ModelVersion": "1 2"}, "data.modelVersion"),
    ({"ModelVersion": ".1"}, "data.modelVersion"),
])
def test_a_registered_model_whose_name_or_version_cannot_be_an_azure_ml_name_is_rejected(
        data: dict[str, str], field: str) -> None:
    raw = event("model_registered", **data)
    outcome, state, _ = received(raw)
    assert outcome is Outcome.REJECTED
    reason = rejection(state, raw)
    assert field in reason and ASSET_NAME.pattern in reason, reason


@pytest.mark.parametrize("ids", ["credit/risk:1", "credit-risk", "credit-risk:1,../x:2", "credit-risk:", ":3"])
def test_a_deployment_naming_a_model_id_that_cannot_be_an_azure_ml_one_is_rejected(ids: str) -> None:
    raw = event("model_deployed", ModelIds=ids)
    outcome, state, _ = received(raw)
    assert outcome is Outcome.REJECTED
    assert "data.modelIds" in rejection(state, raw)


def test_a_deployment_of_model_ids_as_azure_ml_sends_them_is_queued() -> None:
    outcome, _, queue = received(event("model_deployed", ModelIds="sklearn_regression_model:1,credit-risk:2.1"))
    assert outcome is Outcome.QUEUED and len(queue.sent) == 1


def nested(depth: int) -> str:
    """A JSON object nested `depth` levels deep, as text (`json.dumps` could not write it)."""
    return '{"k": ' * depth + '"bottom"' + "}" * depth


@pytest.mark.parametrize("depth", [40, 600, 990, 5000])
def test_model_tags_nested_deeper_than_the_parser_goes_are_rejected_naming_the_field_and_answered_202(
        depth: int) -> None:
    """Nested 990 deep, the local host's parser ran out of recursion: the delivery was a 400 and nothing was
    kept. Now the event reaches intake, which rejects it (naming the field) and keeps it; Event Grid gets the
    202 of a delivery whose every event was handled, as for any rejected event."""
    raw = event("model_registered", ModelTags="DEEP")
    body = json.dumps([raw]).replace('"DEEP"', nested(depth))
    state, queue = Stores(FakeState()), Queue()  # type: ignore[arg-type]

    def invoke(delivered: dict[str, Any]) -> None:
        intake.receive(delivered, state, queue, clock=lambda: START)  # type: ignore[arg-type]

    reply = webhooks.deliver({"aeg-event-type": "Notification"}, body.encode(), invoke)

    assert reply.status == 202, reply.body
    assert queue.sent == []
    reason = rejection(state, raw)
    assert reason.startswith("'data.ModelTags.k.k") and "nested more than 32 levels deep" in reason, reason
    assert len(reason) < 300
    entries = [entry for entry in state.read_audit() if entry.action == "intake"]
    assert [entry.outcome for entry in entries] == ["rejected"] and entries[0].correlation_id == raw["id"]


def test_a_body_nested_too_deep_that_is_no_array_of_events_is_still_a_400() -> None:
    def refuse(delivered: dict[str, Any]) -> None:
        raise AssertionError("a bad delivery must not reach the function")

    assert webhooks.deliver({}, b"[" * 5000 + b"]" * 5000, refuse).status == 400
    assert webhooks.deliver({}, b"[" * 5000 + b"]" * 4999, refuse).status == 400  # unbalanced: not JSON


def test_brackets_inside_strings_are_text_when_the_host_cuts_deep_nesting() -> None:
    body = b'[{"a": "x]\\"[{", "d": ' + b'{"k": ' * 1200 + b"1" + b"}" * 1200 + b"}]"
    [parsed] = webhooks.parse(body)
    assert parsed["a"] == 'x]"[{'
    depth, value = 0, parsed["d"]
    while isinstance(value, dict):
        depth, value = depth + 1, value["k"]
    assert depth == webhooks.KEEP_DEPTH - 2 and "cut by the local host" in value


def test_parse_event_names_the_run_id_as_azure_ml_spells_it() -> None:
    with pytest.raises(MalformedEvent, match=r"data\.runId: Value error, 'x\.\.y' cannot be an Azure ML job name"):
        parse_event(event("run_completed", RunId="x..y"))
