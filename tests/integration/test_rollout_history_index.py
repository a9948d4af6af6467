"""An endpoint's rollout history on a real Azurite (tables and blobs): it pages newest first, one index query a
page whatever the archive holds, and archives kept in today's layout (blobs only, or an index of layout 1) are
found after the first start."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from shared.adapters.storage.index import EARLIER, META
from shared.adapters.storage.state import BlobStateStore
from shared.bootstrap import Services
from shared.domain.records import Rollout
from shared.ops.http import serve
from shared.ops.routes import by_function
from shared.reactor.rollout import archive_key, find
from shared.settings import Settings
from tests.integration.test_state_index import Calls, lifecycle, services_on

START = datetime(2026, 6, 1, tzinfo=UTC)
ENDPOINTS = {"ep-big": 130, "ep-mid": 70, "ep-b": 30, "ep-bi": 20}  # 250 archived; `ep-b` a prefix of `ep-big`


def rollout(endpoint: str, version: int, started: datetime, state: str = "succeeded") -> Rollout:
    return Rollout.model_validate({
        "id": f"rollout-{endpoint}-v{version}", "key": f"prod.{endpoint}", "workspace": "prod", "endpoint": endpoint,
        "deployment": f"m-v{version}", "rule": "churn", "model": "m", "version": str(version),
        "plan": {"workspace": "prod", "endpoint": endpoint, "steps": [100]}, "baseline": {}, "state": state,
        "phase": "step", "started": started, "finished": started + timedelta(minutes=5)})


def archived(endpoint: str, count: int) -> list[Rollout]:
    """`count` archived rollouts of the endpoint, one a day, written in no order of time."""
    return [rollout(endpoint, version, START + timedelta(days=version, minutes=len(endpoint)))
            for version in sorted(range(count), key=lambda n: (n * 37) % count)]


def history(services: Services, endpoint: str, **params: str) -> func.HttpResponse:
    function = by_function()["ops_rollout_action"]
    request = func.HttpRequest("GET", f"http://host/api/ops/rollouts/prod/{endpoint}/history", params=params,
                               route_params={"workspace": "prod", "endpoint": endpoint, "action": "history"},
                               body=b"", headers={"Authorization": "Bearer ana"})
    return serve(function, request, lambda: services)


def pages(services: Services, endpoint: str, limit: int, calls: Calls | None = None
          ) -> list[tuple[list[dict[str, Any]], int]]:
    """Every page of the endpoint's history, with the storage requests each cost."""
    found, following = [], None
    while True:
        before = calls.count if calls else 0
        answer = history(services, endpoint, limit=str(limit), **({"next": following} if following else {}))
        assert answer.status_code == 200, answer.get_body()
        body = json.loads(answer.get_body())
        found.append((body["items"], (calls.count if calls else 0) - before))
        following = body.get("next")
        if not following:
            return found


def test_the_history_pages_newest_first_one_endpoint_only_at_one_query_a_page(settings: Settings) -> None:
    calls = Calls()
    services = services_on(settings, calls)
    archive = services.state.archived_rollouts
    archive.listing()  # the first start: the (empty) state is indexed
    written = {endpoint: archived(endpoint, count) for endpoint, count in ENDPOINTS.items()}
    documents = [(archive_key(record), record.stored()) for records in written.values() for record in records]
    with ThreadPoolExecutor(16) as pool:  # stored, and indexed as the first start does (100 to a transaction)
        list(pool.map(lambda found: services.state.blobs.put("rollout-archive", *found), documents))
    services.state.index.add_missing(archive.entities(list(documents)))  # type: ignore[union-attr]
    late = rollout("ep-mid", 70, START + timedelta(days=200))  # and one archived as `rollout.start` does
    archive.put(archive_key(late), late)
    written["ep-mid"].append(late)
    currents = {endpoint: rollout(endpoint, 500, START + timedelta(days=400), "rolled_back")  # ended: first
                for endpoint in ("ep-big", "ep-bi")}
    for current in currents.values():
        services.state.rollouts.put(current.key, current)

    for endpoint in ENDPOINTS:
        found = pages(services, endpoint, 30, calls)
        items = [item for page, _ in found for item in page]
        expected = sorted(written[endpoint], key=lambda record: record.started, reverse=True)
        if endpoint in currents:
            expected.insert(0, currents[endpoint])
        assert [(item["endpoint"], item["version"]) for item in items] == [
            (record.endpoint, record.version) for record in expected], endpoint
        assert [len(page) for page, _ in found] == [min(30, len(expected) - n) for n in range(0, len(expected), 30)]
        assert len({page_calls for _, page_calls in found}) == 1, found  # the same requests for every page
        assert found[0][1] <= 2  # the current rollout's blob and one query

    one = pages(services, "ep-bi", 1)  # the current run alone on the first page, then the archive from its start
    assert [[item["version"] for item in page] for page, _ in one] == [["500"], *([str(n)] for n in range(19, -1, -1))]


@pytest.mark.parametrize("token", ["garbage", "eyJraW5kIjoicm9sbG91dCJ9", "other-endpoint's"])
def test_a_history_token_no_page_of_this_endpoint_gave_is_a_400_naming_next(settings: Settings, token: str) -> None:
    services = services_on(settings)
    archive = services.state.archived_rollouts
    for record in [*archived("ep-mid", 3), *archived("ep-big", 3)]:
        archive.put(archive_key(record), record)
    if token == "other-endpoint's":
        token = json.loads(history(services, "ep-big", limit="1").get_body())["next"]

    answer = history(services, "ep-mid", next=token)

    assert answer.status_code == 400, answer.get_body()
    assert json.loads(answer.get_body())["field"] == "next"


def test_archives_stored_before_the_index_are_found_on_first_start(state: BlobStateStore, settings: Settings) -> None:
    # A snapshot of today's layout: records/rollout-archive/<endpoint key>.<deployment>.<started>.json, no index.
    kept = [*archived("ep-mid", 12), *archived("ep-b", 5)]
    for record in kept:
        state.put("rollout-archive", archive_key(record), record.stored())

    services = services_on(settings)  # the first start

    found = [item["version"] for page, _ in pages(services, "ep-mid", 5) for item in page]
    assert found == [str(n) for n in range(11, -1, -1)]
    assert [item["version"] for page, _ in pages(services, "ep-b", 100) for item in page] == ["4", "3", "2", "1", "0"]
    latest = find(services, "prod.ep-mid", "m-v7")  # the latest archived rollout of a deployment
    assert latest is not None and latest.version == "7"


def test_an_index_of_layout_1_gets_the_newest_first_entries_alone(settings: Settings) -> None:
    """The upgrade of an index the app wrote before the history paged: only the archived rollouts are read again
    (not every lifecycle), and their newest-first entries added."""
    calls = Calls()
    services = services_on(settings, calls)
    index, blobs = services.state.index, services.state.blobs
    assert index is not None
    index.table.create_table()
    documents = [(f"churn:{n}", lifecycle("churn", n, "failed")) for n in range(150)]
    kept = archived("ep-mid", 8)
    archives = [(archive_key(record), record.stored()) for record in kept]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda found: blobs.put("lifecycle", *found), documents))
        list(pool.map(lambda found: blobs.put("rollout-archive", *found), archives))
    # Layout 1 indexed each record under its key only (no `stamp`), and marked itself complete.
    index.add_missing([*services.state.lifecycles.entities(list(documents)),
                       *(entity for entity in services.state.archived_rollouts.entities(list(archives))
                         if entity["PartitionKey"] == "rollout-archive")])
    index.table.upsert_entity({"PartitionKey": META, "RowKey": EARLIER, "complete": True})

    upgraded = services_on(settings, calls)  # the first start of this version
    before = calls.count
    found = [item["version"] for page, _ in pages(upgraded, "ep-mid", 3) for item in page]

    assert found == [str(n) for n in range(7, -1, -1)]
    assert calls.count - before < 50, calls.count - before  # 150 lifecycles are not read again
    assert len(upgraded.state.lifecycles.listing()) == 150
