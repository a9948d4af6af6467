"""The blob state store on a real Azurite: ledger, ETags, leases, audit trail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.storage.state import AuditEntry, BlobStateStore, Conflict, blob_path


def test_of_concurrent_claims_on_one_event_exactly_one_wins(state: BlobStateStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: state.claim_event("event-1", {"n": 1}), range(16)))
    assert results.count(True) == 1


def test_a_stale_etag_is_refused(state: BlobStateStore) -> None:
    state.write("lifecycle", "m:1", {"stage": "testing"}, None)
    _, etag = state.read("lifecycle", "m:1")
    state.write("lifecycle", "m:1", {"stage": "passed"}, etag)
    with pytest.raises(Conflict):
        state.write("lifecycle", "m:1", {"stage": "failed"}, etag)
    assert state.get("lifecycle", "m:1") == {"stage": "passed"}


def test_concurrent_updates_are_all_applied(state: BlobStateStore) -> None:
    def increment(_: int) -> None:
        state.update("counter", "c", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(increment, range(12)))
    assert state.get("counter", "c") == {"n": 12}


def test_a_lease_admits_one_writer(state: BlobStateStore) -> None:
    with state.lease("rollout", "endpoint-a", seconds=15):  # noqa: SIM117 - the outer lease is held throughout
        with pytest.raises(Conflict, match="leased"), state.lease("rollout", "endpoint-a", seconds=15):
            pass
    with state.lease("rollout", "endpoint-a", seconds=15):
        pass


def test_the_audit_trail_appends_in_order(state: BlobStateStore) -> None:
    for n in range(3):
        state.audit(AuditEntry(correlation_id=f"e{n}", subject="s", action="a", outcome="o", reason=str(n)))
    assert [entry.reason for entry in state.read_audit()] == ["0", "1", "2"]


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 300, "a b"])
def test_names_that_could_escape_their_folder_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsafe name"):
        blob_path("records", name)
