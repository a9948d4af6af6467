"""The admin API's HTTP functions as the Functions host indexes them: name, path, and whether the host
asks for the function key. Nothing else, and it imports nothing of the app.

`handlers/ops_api.py` registers from this table at every cold start, without importing the full
route table (`shared.ops.routes`: handlers, models, OpenAPI), which each function loads on its first
request. `tests/unit/test_ops_paths.py` checks that this table is what `routes.by_function()` derives,
so the two cannot drift (see docs/cold-start.md).
"""

from typing import NamedTuple


class HttpFunction(NamedTuple):
    """One HTTP function of the admin API: it serves every route of one path."""

    name: str
    path: str
    key: bool  # the host asks for the function key (a machine's route); people's routes are anonymous to it


FUNCTIONS: tuple[HttpFunction, ...] = (
    HttpFunction("ops_health", "ops/health", key=True),
    HttpFunction("ops_signin", "ops/signin", key=False),
    HttpFunction("ops_promote", "ops/models/{location}/{name}/{version}/promote", key=False),
    HttpFunction("ops_traffic", "ops/endpoints/{workspace}/{endpoint}/traffic", key=False),
    HttpFunction("ops_rollouts", "ops/rollouts", key=False),
    HttpFunction("ops_rollout", "ops/rollouts/{workspace}/{endpoint}", key=False),
    HttpFunction("ops_rollout_action", "ops/rollouts/{workspace}/{endpoint}/{action}", key=False),
    HttpFunction("ops_retrain", "ops/retrain", key=False),
    HttpFunction("ops_replay", "ops/events/replay", key=False),
    HttpFunction("ops_setaside", "ops/events/setaside", key=False),
    HttpFunction("ops_lifecycles", "ops/lifecycles", key=False),
    HttpFunction("ops_lifecycle", "ops/lifecycles/{name}/{version}", key=False),
    HttpFunction("ops_review", "ops/lifecycles/{name}/{version}/review", key=False),
    HttpFunction("ops_champion_history", "ops/champions/{rule}/history", key=False),
    HttpFunction("ops_audit", "ops/audit", key=False),
    HttpFunction("ops_policy_validate", "ops/policy/validate", key=False),
    HttpFunction("ops_openapi", "ops/openapi.json", key=False),
)
