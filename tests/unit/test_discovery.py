"""The resync discovers: versions whose ModelRegistered never arrived are listed and started, once; and a
version an event announced but the platform does not show yet is looked for again before it is ignored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.storage.stores import Stores
from shared.bootstrap import Services
from shared.domain import discovery
from shared.domain.events import parse_event
from shared.domain.ports import JobStatus, PlatformError
from shared.domain.records import Stage
from shared.domain.work import WorkItem
from shared.reactor import intake, reactions, worker
from tests.unit.test_isolation_fakes import (
    POLICY,
    START,
    FakePlatform,
    FakeState,
    clock_of,
    fake_services,
    fake_state,
)

DEV = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
       "Microsoft.MachineLearningServices/workspaces/dev")
PROD = DEV.replace("/dev", "/prod")
ONWARD = ("rolling_out", "live")  # tested, passed, promoted: its rollout started (the ticks take it on)


@pytest.fixture
def services() -> Services:
    return fake_services(POLICY, workspaces={"dev": DEV, "prod": PROD})


def platform(services: Services) -> FakePlatform:
    assert isinstance(services.platform, FakePlatform)
    return services.platform


def stage(services: Services, version: str, model: str = "churn") -> str | None:
    record = services.state.lifecycles.get(f"{model}:{version}")
    return record.stage.value if record else None


def audited(services: Services, action: str, outcome: str | None = None) -> list[tuple[str, str]]:
    return [(e.subject, e.outcome) for e in fake_state(services).entries
            if e.action == action and (outcome is None or e.outcome == outcome)]


def registered_event(version: str, minutes_ago: float, services: Services) -> dict[str, Any]:
    when = services.clock() - timedelta(minutes=minutes_ago)
    return {
        "topic": DEV, "subject": f"models/churn:{version}", "id": f"event-churn-{version}",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "eventTime": when.isoformat().replace("+00:00", "Z"),
        "data": {"ModelName": "churn", "ModelVersion": version, "ModelTags": {}},
        "dataVersion": "", "metadataVersion": "1",
    }


# -- discovery ----------------------------------------------------------------------------------------------------


def test_a_version_with_no_event_is_discovered_at_the_next_resync_and_started_once(services: Services) -> None:
    platform(services).register("churn", "5", created_at=START - timedelta(minutes=3))

    first = reactions.resync(services)
    again = reactions.resync(services)

    assert stage(services, "5") in ONWARD, first
    assert first["discovery:dev"].startswith("listed 1 ") and "started 1" in first["discovery:dev"]
    assert "started 0" in again["discovery:dev"]
    assert audited(services, "discover") == [("churn:5", "started")]
    assert audited(services, "test", "submitted") == [("churn:5", "submitted")], "one test job, submitted once"


def test_a_version_its_event_started_is_not_started_again(services: Services) -> None:
    platform(services).register("churn", "5", created_at=START - timedelta(minutes=1))
    reactions.react(parse_event(registered_event("5", 1, services)), services)
    assert stage(services, "5") in ONWARD

    results = reactions.resync(services)

    assert "started 0" in results["discovery:dev"]
    assert audited(services, "discover") == []
    assert audited(services, "test", "submitted") == [("churn:5", "submitted")]


def test_only_the_watched_workspaces_and_the_rules_model_names_are_listed(services: Services) -> None:
    platform(services).register("churn", "1", created_at=START)
    platform(services).register("fraud", "1", created_at=START)  # no rule takes it
    platform(services).register("churn", "2", created_at=START, workspace="prod")  # not a rule's source

    results = reactions.resync(services)

    assert [listing[0] for listing in platform(services).listings] == ["dev"]
    assert "discovery:prod" not in results
    assert stage(services, "1") in ONWARD and (stage(services, "1", "fraud"), stage(services, "2")) == (None, None)


def test_the_first_listing_looks_back_a_day_and_the_watermark_follows_what_was_seen(services: Services) -> None:
    clock = clock_of(services)
    platform(services).register("churn", "1", created_at=START - timedelta(days=2))  # before the app watched
    platform(services).register("churn", "2", created_at=START - timedelta(hours=2))

    reactions.resync(services)
    (_, since, before, limit) = platform(services).listings[-1]
    watermark = services.state.discoveries.get("dev")

    assert (since, before, limit) == (START - discovery.FIRST_LOOKBACK - discovery.OVERLAP, None, discovery.LIMIT)
    assert stage(services, "1") is None and stage(services, "2") in ONWARD
    assert watermark is not None and watermark.watermark == START - timedelta(hours=2)
    assert (watermark.listed, watermark.started) == (1, 1)

    clock.advance(minutes=5)
    platform(services).register("churn", "3", created_at=clock() - timedelta(seconds=30))
    reactions.resync(services)
    (_, since, _, _) = platform(services).listings[-1]

    assert since == START - timedelta(hours=2) - discovery.OVERLAP, "the watermark less the overlap"
    assert stage(services, "3") not in (None, "testing"), "tested; it waits for the endpoint churn:2 holds"
    assert services.state.discoveries.get("dev").watermark == clock() - timedelta(seconds=30)  # type: ignore[union-attr]


def test_a_version_listed_late_within_the_overlap_is_still_found(services: Services) -> None:
    """Eventual consistency: a version created before the newest one seen, shown in a listing only later."""
    platform(services).register("churn", "2", created_at=START - timedelta(minutes=1))
    platform(services).hidden.add(("churn", "1"))
    platform(services).register("churn", "1", created_at=START - timedelta(minutes=4))
    reactions.resync(services)
    assert stage(services, "1") is None

    clock_of(services).advance(minutes=5)
    platform(services).hidden.clear()
    reactions.resync(services)

    assert stage(services, "1") is not None


def test_a_listing_is_bounded_and_the_rest_is_listed_in_the_next_periods(
    services: Services, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discovery, "LIMIT", 3)
    for number in range(1, 8):  # churn:1 oldest ... churn:7 newest
        platform(services).register("churn", str(number), created_at=START - timedelta(minutes=60 - number))

    periods, states = [], []
    for _ in range(5):
        before = {str(n) for n in range(1, 8) if stage(services, str(n)) is not None}
        reactions.resync(services)
        after = {str(n) for n in range(1, 8) if stage(services, str(n)) is not None}
        periods.append(sorted(after - before, key=int))
        states.append(services.state.discoveries.get("dev"))

    # The oldest version of a page is listed again at the top of the next one (a bound that takes equal times).
    assert periods == [["5", "6", "7"], ["3", "4"], ["1", "2"], [], []], "newest first, three a period"
    listings = platform(services).listings
    assert [listing[2] for listing in listings] == [
        None, START - timedelta(minutes=55), START - timedelta(minutes=57), START - timedelta(minutes=59), None,
    ], "each period goes on from the oldest version the last one listed; a short listing ends the pass"
    ended = states[3]
    assert ended is not None and ended.backlog_before is None, "the fourth period's listing came back short"
    assert [state.watermark for state in states[:4] if state] == [START - discovery.FIRST_LOOKBACK] * 3 + [
        START - timedelta(minutes=53)], "the watermark moves when a pass ends, to the newest version it saw"


def test_a_version_that_fails_to_start_keeps_the_listing_where_it_was(services: Services) -> None:
    platform(services).register("churn", "1", created_at=START - timedelta(minutes=1))
    platform(services).job_errors["test-churn-v1"] = PlatformError("the pipeline is gone")

    results = reactions.resync(services)

    assert "1 failed" in results["discovery:dev"]
    assert services.state.discoveries.get("dev") is None, "not moved on: the version is listed again"
    assert audited(services, "discover", "error") == [("churn:1", "error")]


def test_a_workspace_whose_listing_fails_is_reported_and_the_rest_goes_on(services: Services) -> None:
    services.state.lifecycles.put("churn:9", services.state.lifecycles.get("churn:9") or _testing("9"))

    def refuse(*args: object, **kwargs: object) -> list:
        raise PlatformError("Azure refused the listing (400)")

    platform(services).list_model_versions = refuse  # type: ignore[method-assign]

    results = reactions.resync(services)

    assert results["discovery:dev"].startswith("error: PlatformError")
    assert results["churn:9"] in ONWARD, "the lifecycles are reconciled all the same"
    assert audited(services, "discover", "error") == [("dev", "error")]


def _testing(version: str) -> Any:
    from tests.unit.test_isolation_fakes import lifecycle_record

    return lifecycle_record("churn", version, "testing")


def test_a_test_job_whose_run_event_was_lost_is_judged_by_the_resync(services: Services) -> None:
    """The resync reconciles a lifecycle in testing by reading its job: no RunCompleted is needed."""
    platform(services).register("churn", "4", created_at=START)
    running = FakePlatform.get_job

    def job(self: FakePlatform, workspace: str, name: str) -> Any:
        found = running(self, workspace, name)
        return found.model_copy(update={"status": JobStatus.RUNNING}) if not finished else found

    finished = False
    platform(services).get_job = job.__get__(platform(services))  # type: ignore[method-assign]
    reactions.resync(services)
    assert stage(services, "4") == Stage.TESTING.value

    finished = True  # the job ends; its RunCompleted is lost
    reactions.resync(services)

    assert stage(services, "4") in ONWARD
    passed = [e for e in fake_state(services).entries if e.action == "lifecycle" and e.outcome == "passed"]
    assert [(e.subject, e.correlation_id) for e in passed] == [("churn:4", "resync")]


# -- not found right after an announcement ------------------------------------------------------------------------


def test_a_version_not_shown_yet_after_its_event_is_taken_again_later_not_ignored(services: Services) -> None:
    platform(services).hidden.add(("churn", "5"))

    with pytest.raises(reactions.NotYetVisible, match=r"churn:5 was announced 60 s ago but is not in dev yet"):
        reactions.react(parse_event(registered_event("5", 1, services)), services)

    assert audited(services, "react", "ignored") == []


def test_it_is_ignored_only_once_it_was_announced_longer_ago_than_the_patience(services: Services) -> None:
    platform(services).hidden.add(("churn", "5"))
    minutes = reactions.NOT_FOUND_PATIENCE.total_seconds() / 60 + 1

    reactions.react(parse_event(registered_event("5", minutes, services)), services)

    [(subject, _)] = audited(services, "react", "ignored")
    reason = next(e.reason for e in fake_state(services).entries if e.outcome == "ignored")
    assert subject == "models/churn:5"
    assert "the resync's discovery starts it if it appears" in reason


class Queue:
    """A work queue that keeps what is sent, with its delay, and delivers it again when asked."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], float]] = []

    def send(self, item: dict[str, Any], delay_seconds: float = 0) -> None:
        self.sent.append((item, delay_seconds))


def test_through_the_worker_it_is_delivered_again_with_delay_then_ignored_then_discovered() -> None:
    """The whole path: intake claims the event (its ledger entry says when it arrived); the worker delivers it
    again while the version is not shown, with growing delays; past the patience it is ignored, audited; and
    when the version appears at last, the resync's discovery starts it."""
    services = fake_services(POLICY, workspaces={"dev": DEV, "prod": PROD})
    queue = Queue()
    services.work_queue = queue  # type: ignore[assignment]
    clock = clock_of(services)
    platform(services).hidden.add(("churn", "5"))
    platform(services).register("churn", "5", created_at=START)
    intake.receive(registered_event("5", 0, services), services.state, queue, clock=clock)  # type: ignore[arg-type]

    delays = []
    for _ in range(worker.MAX_REDELIVERIES + 1):
        item, _ = queue.sent.pop()
        worker.process(WorkItem.model_validate(item), services)
        if not queue.sent:
            break
        delays.append(queue.sent[-1][1])
        clock.advance(seconds=queue.sent[-1][1])

    deferred = audited(services, "react", "deferred")
    assert len(deferred) == len(delays) and 8 <= len(delays) < worker.MAX_REDELIVERIES, "a bounded number of times"
    assert delays == sorted(delays), "each delay longer than the last"
    assert audited(services, "react", "ignored") == [("models/churn:5", "ignored")]
    assert stage(services, "5") is None

    platform(services).hidden.clear()  # it shows at last
    reactions.resync(services)

    assert stage(services, "5") in ONWARD


def test_the_watermark_is_a_record_of_the_state_store() -> None:
    stores = Stores(FakeState())  # type: ignore[arg-type]
    stores.discoveries.put("dev", discovery.advanced(discovery.first(START), [START], 200, START, 1))

    stored = stores.discoveries.get("dev")

    assert stored is not None and stored.watermark == START and (stored.listed, stored.started) == (1, 1)


def test_a_full_page_of_one_creation_time_does_not_hold_the_listing_forever() -> None:
    state = discovery.Discovery(watermark=START - timedelta(hours=1), backlog_before=START, pass_newest=START)

    moved = discovery.advanced(state, [START, START, START], 3, START, 0)

    assert moved.backlog_before == START - timedelta(microseconds=1)
    assert moved.watermark == state.watermark and moved.pass_newest == START
