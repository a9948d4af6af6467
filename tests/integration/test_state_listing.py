"""Listing records on a real Azurite: every record, in key order, downloaded concurrently; a record
deleted between the listing and its download is left out, any other failure is raised."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

from shared.adapters.storage.state import BlobStateStore

# Keys whose blob names sort in another order than the keys: `-` sorts before the `.` of `.json`,
# and encoded characters (`%20`, `%2F`) sort by their escape, not by the character.
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")
KEYS = ["m:1", "m:1-b", "m:10", "m:2", "m: 3", "m:/4", "m:a", "m:a.b", "m:\u00e9"]


@pytest.fixture
def seeded(state: BlobStateStore) -> list[str]:
    for key in KEYS:
        state.put("lifecycle", key, {"key": key, "history": [{"n": n} for n in range(20)]})
    state.put("lifecycle", "other:1", {"key": "other:1"})
    state.put("rollout", "m:1", {"key": "rollout m:1"})
    return sorted(KEYS)


class WatchedDownloads:
    """Runs `before` ahead of each `BlobClient.download_blob` (it may delete the blob or raise); notes threads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, before: Callable[[str], None] = lambda name: None) -> None:
        self.threads: set[int] = set()
        self.names: list[str] = []
        lock = threading.Lock()
        original = BlobClient.download_blob

        def download_blob(blob: BlobClient, *args: Any, **kwargs: Any) -> Any:
            with lock:
                self.threads.add(threading.get_ident())
                self.names.append(blob.blob_name)
            before(blob.blob_name)
            return original(blob, *args, **kwargs)

        monkeypatch.setattr(BlobClient, "download_blob", download_blob)


def test_items_returns_every_record_with_the_prefix_in_key_order(state: BlobStateStore, seeded: list[str]) -> None:
    found = state.items("lifecycle", prefix="m:")
    assert [key for key, _ in found] == seeded
    assert all(doc["key"] == key and len(doc["history"]) == 20 for key, doc in found)
    assert state.list("lifecycle", prefix="m:") == [doc for _, doc in found]
    assert [key for key, _ in state.items("lifecycle")] == [*seeded, "other:1"]


def test_the_downloads_run_on_several_threads(
    state: BlobStateStore, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads = WatchedDownloads(monkeypatch)
    assert [key for key, _ in state.items("lifecycle", prefix="m:")] == seeded
    assert len(downloads.names) == len(seeded)
    assert len(downloads.threads) > 1


def test_each_download_sees_the_callers_context(
    state: BlobStateStore, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The context (OpenTelemetry's current span is a context variable) follows each download to its thread."""
    seen: list[str] = []
    WatchedDownloads(monkeypatch, lambda name: seen.append(CALLER.get()))
    token = CALLER.set("listing caller")
    try:
        state.items("lifecycle", prefix="m:")
    finally:
        CALLER.reset(token)
    assert seen == ["listing caller"] * len(seeded)


def test_one_after_another_gives_the_same_records(state: BlobStateStore, seeded: list[str]) -> None:
    concurrent = state.items("lifecycle")
    state.listing_workers = 1
    assert state.items("lifecycle") == concurrent


def test_a_record_deleted_while_listing_is_left_out(
    state: BlobStateStore, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def delete_m2(name: str) -> None:
        if name.endswith("/m:2.json"):
            state.container.delete_blob(name)  # after the listing, just before its download

    downloads = WatchedDownloads(monkeypatch, delete_m2)
    assert [key for key, _ in state.items("lifecycle", prefix="m:")] == [key for key in seeded if key != "m:2"]
    assert any(name.endswith("/m:2.json") for name in downloads.names)
    assert state.get("lifecycle", "m:2") is None


def test_any_other_failure_of_a_download_is_raised(
    state: BlobStateStore, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse_m10(name: str) -> None:
        if name.endswith("/m:10.json"):
            raise HttpResponseError("server busy")

    WatchedDownloads(monkeypatch, refuse_m10)
    with pytest.raises(HttpResponseError, match="server busy"):
        state.items("lifecycle", prefix="m:")
    with pytest.raises(HttpResponseError, match="server busy"):
        state.list("lifecycle")


def test_a_kind_with_no_records_lists_nothing(state: BlobStateStore, seeded: list[str]) -> None:
    assert state.items("nothing") == []
    assert state.items("lifecycle", prefix="none:") == []
