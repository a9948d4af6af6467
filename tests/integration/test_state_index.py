"""The state index on a real Azurite (tables and blobs): state stored in today's layout is indexed on the first
start, a record that is not valid is set aside and hides nothing, every listing route pages, and the resync's
storage calls grow with the lifecycles in flight, not with every lifecycle ever stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.storage.index import TableIndex, encode_part, stamp, table_name
from shared.adapters.storage.state import BlobStateStore, blob_path
from shared.adapters.storage.stores import Stores
from shared.bootstrap import Services
from shared.domain.people import Person, Role
from shared.domain.records import AuditEntry, Lifecycle
from shared.domain.work import DeadLetter, SetAside
from shared.ops.http import serve
from shared.ops.routes import by_function
from shared.reactor import intake, outcomes, reactions
from shared.settings import Settings
from tests.unit.test_isolation_fakes import FakeClock, FakeNotifier

NOBODY_RULE = "fleet-nobody"
"""A rule the policy does not have: reconciling such a lifecycle reads it under its lease and asks no platform."""


class Reader:
    """The TokenVerifier port: every token is a reader's (who may read is not what these tests are about)."""

    def verify(self, token: str) -> Person:
        return Person(oid="oid-ana", name="ana", roles=frozenset({Role.READER}), upn="ana@contoso.test")


class Calls:
    """Counts the storage requests of the clients it hooks (each attempt: what the account bills)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Any) -> None:
        self.count += 1


def services_on(settings: Settings, calls: Calls | None = None) -> Services:
    """The app's services on Azurite, as `Services.from_settings` wires them, with a notifier that records."""
    hook: dict[str, Any] = {"raw_request_hook": calls} if calls else {}
    connection = settings.storage_connection or ""
    blobs = BlobStateStore(BlobServiceClient.from_connection_string(connection, **hook), settings.state_container)
    index_service = TableServiceClient.from_connection_string(connection, **hook)
    state = Stores(blobs, TableIndex(index_service, table_name(settings.state_container)))
    services = Services(settings=settings, state=state, work_queue=None,  # type: ignore[arg-type]
                        clock=FakeClock(), _notifier=FakeNotifier())  # type: ignore[arg-type]
    services._identities = Reader()
    return services


def lifecycle(model: str, version: int, stage: str, rule: str = "churn") -> dict[str, Any]:
    return Lifecycle.model_validate({"model": model, "version": str(version), "workspace": "dev", "rule": rule,
                                     "stage": stage}).stored()


def get(services: Services, path: str, **params: str) -> func.HttpResponse:
    function = next(routes for routes in by_function().values() if routes[0].path == path)
    request = func.HttpRequest("GET", f"http://host/api/{path}", params=params, body=b"",
                               headers={"Authorization": "Bearer ana"})
    return serve(function, request, lambda: services)


def every_page(services: Services, path: str, **params: str) -> Iterator[dict[str, Any]]:
    following: str | None = None
    while True:
        response = get(services, path, **params, **({"next": following} if following else {}))
        assert response.status_code == 200, response.get_body()
        body = json.loads(response.get_body())
        yield body
        following = body.get("next")
        if not following:
            return


def test_state_stored_before_the_index_is_indexed_on_first_start_and_a_bad_record_hides_nothing(
        state: BlobStateStore, settings: Settings) -> None:
    # A snapshot of today's layout: records/<kind>/<id>.json blobs, written without any index.
    for version in range(1, 6):
        state.put("lifecycle", f"churn:{version}", lifecycle("churn", version, "failed" if version < 4 else "testing"))
    no_stage = lifecycle("churn", 6, "testing")
    del no_stage["stage"]
    state.put("lifecycle", "churn:6", no_stage)
    state.container.upload_blob(blob_path("records", "lifecycle", "churn:7") + ".json", b"{not json")

    services = services_on(settings)  # the first start
    pages = list(every_page(services, "ops/lifecycles", limit="2"))

    listed = [item["version"] for page in pages for item in page["items"]]
    assert listed == ["1", "2", "3", "4", "5"]
    assert len(pages) >= 3 and all(len(page["items"]) <= 2 for page in pages)
    assert [i["version"] for i in json.loads(get(services, "ops/lifecycles", stage="testing").get_body())["items"]] \
        == ["4", "5"]

    aside = json.loads(get(services, "ops/events/setaside", kind="invalid").get_body())["items"]
    assert {item["key"] for item in aside} == {"lifecycle/churn:6", "lifecycle/churn:7"}
    no_stage_entry = next(item for item in aside if item["key"] == "lifecycle/churn:6")
    assert "'stage'" in no_stage_entry["reason"] and no_stage_entry["subject"] == "field stage"
    list(every_page(services, "ops/lifecycles", limit="2"))  # listed again: reported once all the same
    reported = [e for e in services.state.read_audit() if e.action == "record" and e.outcome == "error"]
    assert sorted(e.subject for e in reported) == ["lifecycle/churn:6", "lifecycle/churn:7"]
    told = [n for n in services.notifier.sent.values() if n.kind == outcomes.FAILED]  # type: ignore[attr-defined]
    assert sorted(n.subject for n in told) == ["lifecycle/churn:6", "lifecycle/churn:7"]


def test_the_single_record_routes_answer_a_bad_record_with_a_4xx_naming_the_field(
        state: BlobStateStore, settings: Settings) -> None:
    no_stage = lifecycle("churn", 6, "testing")
    del no_stage["stage"]
    state.put("lifecycle", "churn:6", no_stage)
    services = services_on(settings)
    function = by_function()["ops_lifecycle"]
    request = func.HttpRequest("GET", "http://host/api/ops/lifecycles/churn/6", route_params={
        "name": "churn", "version": "6"}, body=b"", headers={"Authorization": "Bearer ana"})

    answer = serve(function, request, lambda: services)

    assert answer.status_code == 409 and json.loads(answer.get_body())["field"] == "stage"


@pytest.mark.parametrize("path", ["ops/lifecycles", "ops/rollouts", "ops/events/setaside", "ops/audit"])
@pytest.mark.parametrize("token", ["garbage", "eyJraW5kIjoicm9sbG91dCJ9", "lifecycle-AAAA", "audit-"])
def test_a_token_no_page_gave_is_a_400_naming_next(settings: Settings, path: str, token: str) -> None:
    answer = get(services_on(settings), path, next=token)

    assert answer.status_code == 400, answer.get_body()
    assert json.loads(answer.get_body())["field"] == "next"


def test_the_audit_trail_pages_back_from_the_newest_entry_across_days_skipping_a_bad_line(
        state: BlobStateStore, settings: Settings) -> None:
    start = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    entries = [AuditEntry(time=start + timedelta(seconds=number * 5), correlation_id=f"c{number}", subject="s",
                          action="a" if number % 3 else "b", outcome="done") for number in range(1500)]
    for day in ("2026-12-05", "2026-12-06"):  # appended as `BlobStateStore.audit` does, many lines a block
        lines = [entry.model_dump_json().encode() + b"\n" for entry in entries if entry.time.date().isoformat() == day]
        for first in range(0, len(lines), 500):
            state.append_lines(f"audit/{day}.jsonl", b"".join(lines[first:first + 500]))
    state.append_lines("audit/2026-12-06.jsonl", b"{not an entry\n")
    services = services_on(settings)
    services.clock = lambda: datetime(2026, 12, 6, 12, tzinfo=UTC)

    pages = list(every_page(services, "ops/audit", limit="400"))
    seen = [entry["correlation_id"] for page in reversed(pages) for entry in page["items"]]
    assert seen == [f"c{number}" for number in range(1500)]
    filtered = list(every_page(services, "ops/audit", limit="300", action="b"))
    assert [e["correlation_id"] for page in reversed(filtered) for e in page["items"]] == [
        f"c{number}" for number in range(0, 1500, 3)]
    since = json.loads(get(services, "ops/audit", since="2026-12-06T01:00:00").get_body())["items"]
    assert [e["correlation_id"] for e in since] == [f"c{number}" for number in range(1440, 1500)]


def test_resync_storage_calls_grow_with_the_lifecycles_in_flight_not_with_every_lifecycle(
        settings: Settings) -> None:
    calls = Calls()
    services = services_on(settings, calls)
    lifecycles = services.state.lifecycles

    def seed(first: int, count: int, stage: str, rule: str = "churn") -> None:
        state = services.state.blobs
        documents = [(f"old:{n}", lifecycle("old", n, stage, rule)) for n in range(first, first + count)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda found: state.put("lifecycle", *found), documents))
        services.state.index.add_missing(lifecycles.entities(list(documents)))  # type: ignore[union-attr]

    def resync_calls() -> int:
        reactions.resync(services)  # settles incidents and markers a first resync writes
        before = calls.count
        results = reactions.resync(services)
        assert all(not value.startswith("error") for value in results.values()), results
        return calls.count - before

    lifecycles.listing()  # the first start: the (empty) state is indexed
    seed(0, 990, "failed")
    seed(990, 10, "testing", NOBODY_RULE)
    ten_of_1000 = resync_calls()
    seed(1000, 500, "rejected")
    ten_of_1500 = resync_calls()
    seed(1500, 30, "testing", NOBODY_RULE)
    forty_of_1530 = resync_calls()

    assert ten_of_1000 == ten_of_1500, "500 more finished lifecycles cost the resync nothing"
    per_lifecycle = (forty_of_1530 - ten_of_1500) / 30
    assert per_lifecycle >= 1 and forty_of_1530 - ten_of_1500 == pytest.approx(per_lifecycle * 30)
    assert ten_of_1000 <= 10 * per_lifecycle + 10, (ten_of_1000, per_lifecycle)


def test_what_is_set_aside_pages_newest_first_across_kinds_and_leaves_the_listing_when_deleted(
        settings: Settings) -> None:
    services = services_on(settings)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for number in range(7):
        kind = ("rejected", "ignored")[number % 2]
        services.state.set_aside[kind].put(f"{kind}-{number}", SetAside(
            reason=f"r{number}", received=start + timedelta(minutes=number), event={"id": f"e{number}"}))
    services.state.dead_letters.put("dead-1", DeadLetter(message="{}", dequeue_count=5, reason="failed",
                                                         time=start + timedelta(minutes=3, seconds=30)))
    services.state.set_aside["ignored"].put("ignored-1", SetAside(  # set aside again, later: listed once, newer
        reason="again", received=start + timedelta(minutes=9), event={"id": "e1"}))
    services.state.set_aside["rejected"].delete("rejected-6")

    pages = list(every_page(services, "ops/events/setaside", limit="3"))

    listed = [(item["kind"], item["key"]) for page in pages for item in page["items"]]
    assert listed == [("ignored", "ignored-1"), ("ignored", "ignored-5"), ("rejected", "rejected-4"),
                      ("deadletter", "dead-1"), ("ignored", "ignored-3"), ("rejected", "rejected-2"),
                      ("rejected", "rejected-0")]
    only = json.loads(get(services, "ops/events/setaside", kind="rejected").get_body())["items"]
    assert [item["key"] for item in only] == ["rejected-4", "rejected-2", "rejected-0"]


def test_what_intake_sets_aside_after_the_first_start_is_listed(settings: Settings) -> None:
    """Intake writes on its own fail-fast stores: they index too (they did not, and the control room showed
    no rejected event once the index was complete)."""
    services = services_on(settings)
    services.state.lifecycles.listing()  # the first start: the index is complete from here on
    intake_state, _ = intake.fast_stores(settings)
    intake_state.set_aside["rejected"].put("rejected-late", SetAside(
        reason="'data' must be a JSON object", received=datetime(2026, 12, 7, tzinfo=UTC), event={"id": "late"}))

    items = json.loads(get(services, "ops/events/setaside").get_body())["items"]

    assert [(item["kind"], item["key"]) for item in items] == [("rejected", "rejected-late")]


def test_a_record_two_writers_set_aside_at_once_is_listed_once_the_newer(settings: Settings) -> None:
    """Two writers of one dead letter at once (a poison message delivered again while it was being kept) each
    read "not indexed yet" and each left a newest-first entity: the fresh-clone CI run listed the dead letter
    twice. Written here as those two writers leave the index."""
    services = services_on(settings)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    index = services.state.index
    assert index is not None
    for minute in (1, 2):  # the second writer read `before` as the first did: nothing to delete
        record = DeadLetter(message="{}", dequeue_count=5, reason=f"writer {minute}",
                            time=start + timedelta(minutes=minute))
        index.put("deadletter", "dead-1", record.model_dump(mode="json"), {}, at=stamp(record.time))
        if minute == 1:
            index.table.update_entity({"PartitionKey": "deadletter", "RowKey": encode_part("dead-1"), "stamp": ""})
    services.state.set_aside["rejected"].put("rejected-0", SetAside(reason="r", received=start, event={"id": "e"}))

    items = json.loads(get(services, "ops/events/setaside").get_body())["items"]

    assert [(item["kind"], item["key"], item["reason"]) for item in items] == [
        ("deadletter", "dead-1", "writer 2"), ("rejected", "rejected-0", "r")]
