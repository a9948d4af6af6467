"""The typed stores: one per kind of record, each kind named once, models that load every document the
app stored before and write the same JSON back; a document that does not load is named with what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from shared.adapters.notify.notifier import Delivery
from shared.adapters.storage.stores import InvalidRecord, Store, Stores
from shared.domain.champions import Champion
from shared.domain.records import HistoryAction, Lifecycle, Rollout, RolloutAction
from shared.domain.work import Claim, DeadLetter, FailureReport, LedgerEntry, SetAside, WorkFailure
from tests.unit.test_isolation_fakes import FakeState, lifecycle_record
from tests.unit.test_lifecycle_machine import rollout

WHEN = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC).isoformat()  # as `now().isoformat()` wrote it
EVENT = {"id": "evt-1", "eventType": "Microsoft.MachineLearningServices.ModelRegistered", "subject": "models/m:1"}

# Each document as the app wrote it before its kind had a model (the dicts of intake, the worker, outcomes,
# the controller and the notifier).
STORED: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (LedgerEntry, {"event_id": "evt-1", "type": EVENT["eventType"], "subject": "models/m:1", "received": WHEN}),
    (Claim, {"event": EVENT, "received": WHEN}),
    (SetAside, {"reason": "'data' must be a JSON object", "received": WHEN, "event": [1, "not an object"]}),
    (DeadLetter, {"message": '{"key": "k", "event": {}}', "dequeue_count": 5, "reason": "attempt 5: X", "time": WHEN}),
    (WorkFailure, {"event_id": "evt-1", "error": "attempt 1: NotFound: gone", "time": WHEN}),
    (FailureReport, {"scope": "rollout", "subject": "prod.churn", "reason": "RuntimeError: x", "time": WHEN}),
    (Champion, {"model": "churn", "version": "3", "deployment": "churn-v3", "endpoint": "churn", "workspace": "prod",
                "metrics": {"auc": 0.91}, "since": WHEN,
                "previous": {"model": "churn", "version": "2", "deployment": "churn-v2", "endpoint": "churn",
                             "workspace": "prod", "metrics": {"auc": 0.9}, "since": WHEN}}),
    (Delivery, {"notification": "model.rejected:churn:3", "kind": "model.rejected", "channel": "teams",
                "status": "sent", "attempts": 1, "time": WHEN, "error": None}),
]


@pytest.mark.parametrize(("model", "stored"), STORED, ids=[model.__name__ for model, _ in STORED])
def test_every_document_stored_before_loads_and_is_written_back_as_it_was(model: type[BaseModel],
                                                                          stored: dict[str, Any]) -> None:
    assert model.model_validate(stored).model_dump(mode="json") == stored


def test_a_champion_an_older_app_crowned_loads_without_the_fields_it_did_not_keep() -> None:
    state = Stores(FakeState())
    state.blobs.put("champion", "churn", {"model": "churn", "version": 8, "deployment": "churn-v8",
                                          "endpoint": "churn", "metrics": {"auc": 0.9}, "since": WHEN})

    champion = state.champions.get("churn")

    assert champion is not None and champion.is_version("churn", "8")
    assert (champion.workspace, champion.previous, champion.since) == (None, None, datetime.fromisoformat(WHEN))


def test_a_document_that_is_not_its_kind_s_record_is_named_with_what_is_wrong() -> None:
    state = Stores(FakeState())
    state.blobs.put("champion", "churn", {"model": "churn", "metrics": {"auc": "high"}})

    with pytest.raises(InvalidRecord, match=r"champion/churn is not a valid Champion") as refused:
        state.champions.get("churn")

    assert "version" in str(refused.value) and "metrics.auc" in str(refused.value)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_a_record_that_would_not_load_again_is_not_written() -> None:
    state = Stores(FakeState())
    state.lifecycles.put("churn:1", lifecycle_record("churn", "1", "testing"))

    with pytest.raises(InvalidRecord, match="lifecycle/churn:1"):
        state.lifecycles.update("churn:1", lambda stored: stored.model_copy(update={"stage": "nowhere"}))  # type: ignore

    assert state.blobs.get("lifecycle", "churn:1")["stage"] == "testing"  # type: ignore[attr-defined]


def test_a_listing_loads_each_record_when_asked_so_a_bad_one_fails_alone() -> None:
    state = Stores(FakeState())
    state.lifecycles.put("churn:1", lifecycle_record("churn", "1", "testing"))
    state.blobs.put("lifecycle", "churn:2", {"model": "churn", "version": "2"})

    listed = state.lifecycles.listing(prefix="churn:")

    assert [found.key for found in listed] == ["churn:1", "churn:2"]
    assert listed[0].load().stage == "testing"
    with pytest.raises(InvalidRecord, match="lifecycle/churn:2"):
        listed[1].load()


def test_a_lifecycle_judged_before_its_verdict_was_kept_loads_with_its_gate_table() -> None:
    stored = {**lifecycle_record("churn", "1", "passed").stored(), "gates": {
        "header": ["metric", "check", "value", "threshold", "result"],
        "rows": [["auc", ">= champion - 0.01", "0.95", "0.93", "pass"]]}}
    del stored["verdict"]

    record = Lifecycle.model_validate(stored)

    assert record.verdict is None and record.gates is not None and record.gates.rows[0][1] == ">= champion - 0.01"
    assert record.stored()["gates"] == stored["gates"]


def test_each_kind_is_named_once_and_only_the_two_failure_records_share_one() -> None:
    stores = Stores(FakeState())
    kinds = [store.kind for store in vars(stores).values() if isinstance(store, Store)]
    kinds += [store.kind for store in stores.set_aside.values()]

    assert sorted(kinds) == sorted(["ledger", "claims", "rejected", "ignored", "deadletter", "failures", "failures",
                                    "lifecycle", "rollout", "rollout-archive", "champion", "champion-history",
                                    "discovery", "invalid"])
    assert stores.work_failures.kind == stores.failure_reports.kind


# -- rollout history actions ----------------------------------------------------------------------------


EVERY_ACTION_EVER_STORED = [
    "start", "mirror", "step", "analysis:pass", "analysis:fail", "analysis:inconclusive", "awaiting_approval",
    "approve", "pause", "resume", "promote", "promote-full", "abort", "undo", "rollback-pending", "rolled_back",
    "failed", "retired", "succeeded",
]


def test_a_rollout_history_stored_before_the_enum_loads_and_is_stored_as_it_was() -> None:
    stored = rollout().stored()
    stored["history"] = [{"time": WHEN, "action": action, "actor": "timer", "reason": ""}
                         for action in EVERY_ACTION_EVER_STORED]

    record = Rollout.model_validate(stored)

    assert [entry.action for entry in record.history] == [HistoryAction(a) for a in EVERY_ACTION_EVER_STORED]
    assert [entry["action"] for entry in record.stored()["history"]] == EVERY_ACTION_EVER_STORED
    assert sorted(EVERY_ACTION_EVER_STORED) == sorted(HistoryAction)


def test_every_admin_action_is_a_history_action_and_analyses_name_their_result() -> None:
    assert {HistoryAction(action.value) for action in RolloutAction} <= set(HistoryAction)
    for result in ("pass", "fail", "inconclusive"):
        assert HistoryAction.analysis(result).analysis_result == result  # type: ignore[arg-type]
    assert HistoryAction.STEP.analysis_result is None
