"""The blob state store on a real Azurite: ledger, ETags, leases, audit trail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from shared.adapters.storage.state import CHANGED_RETRY_SECONDS, BlobStateStore, blob_path
from shared.adapters.storage.stores import Stores
from shared.domain.champions import Champion
from shared.domain.ports import Busy
from shared.domain.records import AuditEntry
from shared.domain.work import LedgerEntry


def test_of_concurrent_claims_on_one_event_exactly_one_wins(state: BlobStateStore) -> None:
    entry = LedgerEntry(event_id="event-1", type="t", subject="s", received=datetime.now(UTC))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: Stores(state).ledger.create("event-1", entry), range(16)))
    assert results.count(True) == 1
    assert state.container.get_blob_client("ledger/event-1.json").exists(), "the ledger keeps its own folder"


def test_a_stale_etag_is_refused_as_busy_for_a_moment(state: BlobStateStore) -> None:
    state.write("lifecycle", "m:1", {"stage": "testing"}, None)
    _, etag = state.read("lifecycle", "m:1")
    state.write("lifecycle", "m:1", {"stage": "passed"}, etag)
    with pytest.raises(Busy, match="changed concurrently") as refused:
        state.write("lifecycle", "m:1", {"stage": "failed"}, etag)
    assert refused.value.retry_after == CHANGED_RETRY_SECONDS
    assert state.get("lifecycle", "m:1") == {"stage": "passed"}


def test_a_typed_store_writes_the_json_the_app_always_wrote_and_reads_it_back(state: BlobStateStore) -> None:
    since = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    champion = Champion(model="churn", version="2", deployment="churn-v2", endpoint="churn", workspace="prod",
                        metrics={"auc": 0.9}, since=since, previous=Champion(model="churn", version="1", since=since))
    Stores(state).champions.put("churn", champion)

    assert state.get("champion", "churn") == {
        "model": "churn", "version": "2", "deployment": "churn-v2", "endpoint": "churn", "workspace": "prod",
        "metrics": {"auc": 0.9}, "since": since.isoformat(), "previous": {
            "model": "churn", "version": "1", "deployment": None, "endpoint": None, "workspace": None, "metrics": {},
            "since": since.isoformat()}}
    assert Stores(state).champions.get("churn") == champion


def test_concurrent_updates_are_all_applied(state: BlobStateStore) -> None:
    def increment(_: int) -> None:
        state.update("counter", "c", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(increment, range(12)))
    assert state.get("counter", "c") == {"n": 12}


def test_a_lease_admits_one_writer(state: BlobStateStore) -> None:
    with state.lease("rollout", "endpoint-a", seconds=15):  # noqa: SIM117 - the outer lease is held throughout
        with pytest.raises(Busy, match="leased"), state.lease("rollout", "endpoint-a", seconds=15):
            pass
    with state.lease("rollout", "endpoint-a", seconds=15):
        pass


def test_the_audit_trail_appends_in_order(state: BlobStateStore) -> None:
    for n in range(3):
        state.audit(AuditEntry(correlation_id=f"e{n}", subject="s", action="a", outcome="o", reason=str(n)))
    assert [entry.reason for entry in state.read_audit()] == ["0", "1", "2"]


NAMES = [
    "credit-risk..v2:3", "..", ".", ".hidden:1", "v1.", "a/b", "../../ledger/x", "a\\b", "a b", "x%2F", "%",
    "café:1", "tab\there", "?#&+", "lone\ud800surrogate", "x" * 300,
]


@pytest.mark.parametrize("name", NAMES)
def test_any_name_is_stored_under_its_own_folder_and_read_back(state: BlobStateStore, name: str) -> None:
    state.put("lifecycle", name, {"name": name})
    with state.lease("lifecycle", name, seconds=15):
        pass
    assert state.get("lifecycle", name) == {"name": name}
    assert state.items("lifecycle") == [(name, {"name": name})]
    blobs = [blob.name for blob in state.container.list_blobs()]
    assert all(blob.startswith(("records/lifecycle/", "leases/lifecycle/")) for blob in blobs)
    assert all(blob.count("/") == 2 and not blob.endswith(".") for blob in blobs), blobs


def test_names_that_differ_are_different_records(state: BlobStateStore) -> None:
    names = ["a..b", "a%2E%2Eb", "a.b", "a/b", "a%2Fb", "x.", "x", "x%2E", ".x", "%2Ex"]
    for name in names:
        state.put("lifecycle", name, {"name": name})
    assert sorted(key for key, _ in state.items("lifecycle")) == sorted(names)
    assert all(state.get("lifecycle", name) == {"name": name} for name in names)


def test_a_listing_by_prefix_finds_exactly_the_keys_that_start_with_it(state: BlobStateStore) -> None:
    for name in ["m:1", "m.:1", "m..x:1", "m.", "n:1", ".m"]:
        state.put("lifecycle", name, {"name": name})
    for prefix in ["m", "m.", "m..", "m:", ".", ""]:
        expected = sorted(n for n in ["m:1", "m.:1", "m..x:1", "m.", "n:1", ".m"] if n.startswith(prefix))
        assert sorted(doc["name"] for doc in state.list("lifecycle", prefix)) == expected, prefix


@pytest.mark.parametrize("name", ["credit-risk:3", "model_a.v2:10", "e.ab12@x=y", "ledger-key-0123abcd"])
def test_names_the_store_always_took_keep_their_blob_names(name: str) -> None:
    assert blob_path("records", "lifecycle", name) == f"records/lifecycle/{name}"


@pytest.mark.parametrize("name", ["", "x" * 1100])
def test_an_empty_or_too_long_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsafe name"):
        blob_path("records", name)


def test_four_concurrent_replays_of_one_dead_letter_on_azurite_requeue_it_once(state: BlobStateStore) -> None:
    """`handlers.replay` on the real state store: its lease on the dead letter lets one replay requeue it;
    the three others wait for the lease, find the marker the first left and answer 409 naming it."""
    import dataclasses
    import threading

    from shared.domain.work import DeadLetter, WorkItem
    from shared.ops import handlers
    from shared.ops.errors import ApiError
    from shared.ops.models import ReplayRequest
    from tests.unit.test_isolation_fakes import fake_services
    from tests.unit.test_replay import SlowQueue

    queue = SlowQueue(0.2)
    services = dataclasses.replace(fake_services(), state=Stores(state), work_queue=queue)  # type: ignore[arg-type]
    item = WorkItem(key="k-dead", event={"id": "evt-1"})
    services.state.dead_letters.put("k-dead", DeadLetter(message=item.model_dump_json(), dequeue_count=5,
                                                         reason="NotFound", time=datetime.now(UTC)))
    start = threading.Barrier(4)

    def one(number: int) -> int:
        start.wait()
        try:
            handlers.replay(services, ReplayRequest(kind="deadletter", key="k-dead"),
                            handlers.Caller(None, f"c-{number}"))
        except ApiError as error:
            assert "was already replayed at" in error.message, error.message
            return error.status
        return 200

    with ThreadPoolExecutor(4) as pool:
        answers = sorted(pool.map(one, range(4)))

    assert answers == [200, 409, 409, 409]
    assert len(queue.sent) == 1
    assert state.get("deadletter", "k-dead") is None and state.get("replayed", "k-dead") is not None
