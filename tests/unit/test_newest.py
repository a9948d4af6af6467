"""Newest first: versions waiting for a busy endpoint are taken newest first, and a waiting version
older than one waiting, rolling out or serving there is superseded (reported, never deployed)."""

from __future__ import annotations

import pytest

from shared.bootstrap import Services
from shared.domain import lifecycle as stages
from shared.domain import rollout as machine
from shared.domain.records import RolloutState
from shared.reactor import reactions
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import fake_services, fake_state, lifecycle_record

KEY = engine.key_for("prod", "churn")


@pytest.fixture
def services() -> Services:
    return fake_services()


def busy_with(services: Services, version: str) -> None:
    """The endpoint serves `version` and its rollout is paused: every other version waits."""
    name = services.platform.add_serving("churn", version)  # type: ignore[attr-defined]
    plan = services.policy.rule_named("churn").rollout  # type: ignore[union-attr]
    endpoint = services.platform.get_endpoint("prod", "churn")
    record = machine.begin("churn", plan, "churn", version, name, endpoint, "test", services.clock(), "started").record  # type: ignore[arg-type]
    services.state.rollouts.put(KEY, record.model_copy(update={"state": RolloutState.PAUSED}))


def free(services: Services) -> None:
    record = services.state.rollouts.get(KEY)
    assert record is not None
    services.state.rollouts.put(KEY, record.model_copy(update={"state": RolloutState.SUCCEEDED, "retired": True}))


def wait(services: Services, *versions: str) -> None:
    for version in versions:
        services.state.lifecycles.put(f"churn:{version}", lifecycle_record("churn", version, "promoted"))


def stage(services: Services, version: str) -> str:
    return services.state.lifecycles.get(f"churn:{version}").stage.value  # type: ignore[union-attr]


def resync_until_live(services: Services, version: str) -> None:
    for _ in range(10):
        reactions.resync(services)
        if stage(services, version) == "live":
            return
    raise AssertionError(f"v{version} did not go live: {stage(services, version)}")


def test_of_two_waiting_versions_the_newer_is_deployed_and_the_older_superseded(services: Services) -> None:
    busy_with(services, "8")
    wait(services, "9", "13")
    reactions.resync(services)
    free(services)

    resync_until_live(services, "13")
    for _ in range(3):
        reactions.resync(services)

    assert services.platform.serving() == {"churn-v13": 100}  # type: ignore[attr-defined]
    assert "churn-v9" not in services.platform.created  # type: ignore[attr-defined]
    assert stage(services, "9") == "superseded"
    record = services.state.lifecycles.get("churn:9")
    assert record is not None and record.superseded_by == "13"
    assert services.platform.tags[("churn", "9")][stages.TAG] == "superseded"  # type: ignore[attr-defined]
    [told] = [n for n in services.notifier.sent.values() if n.kind == "model.superseded"]  # type: ignore
    assert told.subject == "churn:9" and "v13" in told.summary


def test_waiting_versions_are_resumed_newest_first_whatever_their_names_sort_as(services: Services) -> None:
    """`churn:11` lists before `churn:13`: taken in that order, v11 was deployed first."""
    busy_with(services, "8")
    wait(services, "11", "13")
    free(services)

    reactions.resync(services)

    assert services.platform.created == ["churn-v13"]  # type: ignore[attr-defined]
    assert stage(services, "11") == "superseded"


def test_a_version_older_than_the_one_serving_is_not_deployed(services: Services) -> None:
    busy_with(services, "8")
    free(services)
    fake_state(services).put("champion", "churn", {"model": "churn", "version": "8", "endpoint": "churn"})  # as stored
    wait(services, "7")

    reactions.resync(services)

    assert stage(services, "7") == "superseded"
    assert services.platform.created == []  # type: ignore[attr-defined]


def test_a_newer_version_still_goes_out_over_an_older_one(services: Services) -> None:
    busy_with(services, "8")
    free(services)
    wait(services, "9")

    resync_until_live(services, "9")
    assert services.platform.serving() == {"churn-v9": 100}  # type: ignore[attr-defined]


def test_versions_that_are_not_numbers_are_never_superseded_by_a_guess(services: Services) -> None:
    busy_with(services, "beta")
    free(services)
    wait(services, "alpha")

    reactions.resync(services)

    assert stage(services, "alpha") in ("rolling_out", "live")


@pytest.mark.parametrize(("versions", "order"), [
    (["9", "13", "10"], ["13", "10", "9"]),
    (["1.2.9", "1.2.10", "1.10"], ["1.10", "1.2.10", "1.2.9"]),
    (["9" * 40, "2"], ["2", "9" * 40]),  # beyond the numbers the app compares: after them, never an error
])
def test_versions_in_flight_are_taken_newest_first(versions: list[str], order: list[str]) -> None:
    records = [lifecycle_record("churn", version, "promoted") for version in versions]
    assert [record.version for record in reactions.in_flight(records)] == order


def test_is_newer_compares_numbers_only() -> None:
    assert stages.is_newer("13", "9") and not stages.is_newer("9", "13")
    assert stages.is_newer("1.2.10", "1.2.9")
    assert not stages.is_newer("b", "a") and not stages.is_newer("13", "12a")


def test_a_champion_taken_back_by_an_undo_does_not_supersede_an_older_version(services: Services) -> None:
    busy_with(services, "13")
    record = services.state.rollouts.get(KEY)
    assert record is not None
    services.state.rollouts.put(KEY, record.model_copy(update={"state": RolloutState.ROLLED_BACK}))
    fake_state(services).put("champion", "churn", {"model": "churn", "version": 13, "endpoint": "churn"})  # as stored
    wait(services, "9")

    reactions.resync(services)

    assert stage(services, "9") in ("rolling_out", "live")
