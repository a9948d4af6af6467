"""The endpoint's rollout history (`engine.history`), on fakes of the ports: every run is kept, even two runs of
the same version (a restart), whose records share their id; it pages newest first, the current run first when it
has ended. (The same on Azurite, with the index: tests/integration/test_rollout_history_index.py.)"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.bootstrap import Services
from shared.domain.ports import Endpoint, NotFound
from shared.domain.records import RolloutAction, RolloutState
from shared.ops import handlers
from shared.ops.errors import ApiError
from shared.ops.handlers import Caller
from shared.ops.models import EndpointPath, HistoryPath, Paged
from shared.ops.openapi import document
from shared.ops.routes import ROUTES
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import clock_of, fake_services
from tests.unit.test_lifecycle_controller import KEY, register, tick_until


def three_runs() -> Services:
    """v1 live, v2 aborted, v2 restarted and live: three runs, the last one current and ended."""
    services = fake_services()
    clock = clock_of(services)  # each run starts at its own time, as it does outside a test
    register(services, "1")
    tick_until(services, "1", "live")
    clock.advance(hours=1)
    register(services, "2")
    engine.act(services, KEY, RolloutAction.ABORT, "ops", "wrong feature set")
    clock.advance(hours=1)
    rule = services.policy.rule_named("churn")
    assert rule is not None and rule.rollout is not None
    engine.start(services, "churn", rule.rollout.model_copy(update={"steps": [100]}), "registry:shared", "churn",
                 "2", "request-1", restart=True)
    for _ in range(10):
        engine.tick(services, KEY)
    return services


RUNS = [("2", RolloutState.SUCCEEDED), ("2", RolloutState.ROLLED_BACK), ("1", RolloutState.SUCCEEDED)]
CALLER = Caller(person=None, correlation_id="c-1")
WHERE = HistoryPath(workspace="prod", endpoint="churn", action="history")


def test_a_restarted_rollout_that_ends_keeps_the_earlier_run_of_the_same_version_in_the_history() -> None:
    services = three_runs()

    runs = [(listed.load().version, listed.load().state) for listed in engine.history(services, KEY).items]

    assert runs == RUNS


@pytest.mark.parametrize("crashed", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 3, 4])
def test_the_history_pages_newest_first_the_current_run_first_without_gaps_or_repeats(limit: int,
                                                                                       crashed: bool) -> None:
    services = three_runs()
    current = services.state.rollouts.get(KEY)
    assert current is not None
    if crashed:  # archived as well, as a crash between the archive and the next run's record leaves it
        services.state.archived_rollouts.put(engine.archive_key(current), current)
    pages, following = [], None
    while True:
        page = handlers.rollout_history(services, WHERE, Paged(limit=limit, next=following), CALLER)
        pages.append([(record.version, record.state) for record in page.items])
        following = page.next
        if following is None:
            break

    assert [run for items in pages for run in items] == RUNS
    assert all(len(items) <= limit for items in pages)
    if not crashed:  # the repeat left out makes its page one shorter
        assert [len(items) for items in pages] == [min(limit, len(RUNS) - start) for start in range(0, 3, limit)]


@pytest.mark.parametrize("token", ["garbage", "-1", "eyJraW5kIjoicm9sbG91dCJ9"])
def test_a_history_token_no_page_gave_is_a_400_naming_next(token: str) -> None:
    with pytest.raises(ApiError) as refused:
        handlers.rollout_history(fake_services(), WHERE, Paged(next=token), CALLER)

    assert refused.value.status == 400 and refused.value.field == "next"


def test_the_history_of_an_endpoint_that_neither_exists_nor_ever_had_a_rollout_is_a_404_naming_it() -> None:
    """`GET /api/ops/rollouts/prod/CON/history` answered 200 with no items where every other route said 404."""
    services = fake_services()
    unknown = EndpointPath(workspace="prod", endpoint="CON")

    def missing(workspace: str, endpoint: str) -> Endpoint:
        raise NotFound(f"endpoint {endpoint} not found in {workspace}")

    services.platform.get_endpoint = missing  # type: ignore[method-assign]
    caller = Caller(person=None, correlation_id="c-1")
    with pytest.raises(ApiError) as refused:
        handlers.rollout_history(services, HistoryPath(workspace="prod", endpoint="CON", action="history"), Paged(),
                                 caller)
    assert refused.value.status == 404 and "'CON'" in str(refused.value) and refused.value.field == "endpoint"
    with pytest.raises(NotFound):  # get_rollout's answer, for comparison
        handlers.get_rollout(services, unknown, caller)


def test_the_history_of_an_endpoint_that_exists_but_never_had_a_rollout_is_empty() -> None:
    services = fake_services()
    assert handlers.rollout_history(services, WHERE, Paged(), CALLER).items == []


@pytest.mark.parametrize("name", ["blue-", "ab", "1abc", "a" * 33])
def test_a_name_azure_refuses_for_an_endpoint_is_refused_before_any_lookup(name: str) -> None:
    with pytest.raises(ValidationError):
        EndpointPath(workspace="prod", endpoint=name)


def test_the_openapi_document_gives_the_history_its_page_parameters() -> None:
    path = document(ROUTES)["paths"]["/ops/rollouts/{workspace}/{endpoint}/{action}"]["get"]
    parameters = {parameter["name"]: parameter for parameter in path["parameters"]}

    assert {"limit", "next"} <= set(parameters) and parameters["limit"]["schema"]["maximum"] == 1000
    assert path["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Rollouts")
