"""Fuzz the app's HTTP routes (admin API, scoring, control room) from their own OpenAPI
document, served by the local host: whatever schemathesis generates from the schema, the
answer is never a 5xx.

Bounded: 30 examples per operation (about 400 requests), no shrinking phase, so the module
stays well under a minute on a small machine. (Hypothesis is driven here rather than through
schemathesis's pytest fixture loader, which does not run on pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from devhost.azurite import Azurite
from devhost.stack import Stack, local_stack
from shared.ops.routes import ROUTES

EXAMPLES = 30


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("ops-fuzz"), azurite=azurite) as running:
        yield running


def cases(operation: schemathesis.APIOperation) -> st.SearchStrategy[schemathesis.Case]:
    """Requests within the schema and outside it; on the seeded endpoint too, so that
    bodies reach the checks against a real endpoint rather than stopping at 404."""
    strategies = [operation.as_strategy(mode) for mode in schemathesis.GenerationMode]
    if "{workspace}/{endpoint}" in operation.path:
        strategies.append(operation.as_strategy(path_parameters={"workspace": "prod", "endpoint": "credit-risk"}))
    return st.one_of(strategies)


def test_the_admin_api_never_answers_5xx(stack: Stack) -> None:
    # An admin's token for the admin routes, the function key for health and scoring (machines' routes).
    key = {"x-functions-key": stack.host.keys.function, "Authorization": f"Bearer {stack.token('erin')}"}
    schema = schemathesis.openapi.from_url(f"{stack.host.url}/api/ops/openapi.json", headers=key)
    # Every route under /api; the extension webhooks are the host's (test_webhook_fuzz.py fuzzes them).
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if not op.path.startswith("/runtime/")]
    # schemathesis leaves out the document's own path.
    assert {operation.label for operation in operations} == {
        f"{r.method} /{r.path}" for r in ROUTES if r.path != "ops/openapi.json"} | {
        "POST /score", "GET /score/{job_id}", "GET /ops/controlroom", "GET /ops/controlroom/{asset}"}
    statuses: dict[int, int] = {}

    for operation in operations:
        @given(case=cases(operation))
        @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), database=None)
        def call(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=f"{stack.host.url}/api", headers=key,
                                              checks=[not_a_server_error], timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        call()

    print(f"\nadmin API fuzz: {sum(statuses.values())} requests over {len(operations)} operations; "
          f"statuses {dict(sorted(statuses.items()))}")
