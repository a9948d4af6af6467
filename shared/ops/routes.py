"""The route table: the one list the function app serves and the OpenAPI document
describes, so the two cannot drift apart (the app registers its functions from `paths.FUNCTIONS`,
which a test checks is `by_function()`'s projection). It is also the one matrix of who may do what: each route
names the app role it needs (every GET: `MLOps.Reader`), and the requests that need more. Routes live
under `ops/`, since the Functions host keeps routes and function names starting with `admin` for itself.

One HTTP function serves each path and picks the route by method (405 for others), so
that a path's GET and POST never depend on how a host orders two functions' routes."""

from __future__ import annotations

from typing import Any

from shared.domain.people import Role
from shared.ops import handlers as h
from shared.ops import models as m
from shared.ops.openapi import document
from shared.ops.route import Elevated, Route

ADMIN, APPROVER, OPERATOR = Role.ADMIN, Role.APPROVER, Role.OPERATOR


def openapi(services: object, caller: object) -> dict[str, Any]:
    """The OpenAPI document of the app's HTTP API, this table included."""
    return document(ROUTES)


ROUTES: tuple[Route, ...] = (
    Route("GET", "ops/health", "ops_health", "Platform kind, policy and storage health (for probes: function key)",
          h.health, m.Health, errors=(), status_of=lambda health: 200 if health.ok else 503, role=None, key=True),
    Route("GET", "ops/signin", "ops_signin", "Where people sign in: the Entra authority, tenant, app and scope "
          "(public: it names no secret)", h.sign_in, m.SignIn, errors=(503,), role=None),
    Route("POST", "ops/models/{location}/{name}/{version}/promote", "ops_promote",
          "Promote a model version to targets in order (the rule's promotion path by default)", h.promote,
          m.Promoted, params=m.ModelPath, body=m.PromoteRequest, errors=(400, 404, 409, 503), role=OPERATOR,
          elevated=Elevated(ADMIN, "force: true", lambda where, request: request.force)),
    Route("POST", "ops/endpoints/{workspace}/{endpoint}/traffic", "ops_traffic",
          "Set an endpoint's live and mirror traffic (pauses an active rollout)", h.change_traffic,
          m.TrafficApplied, params=m.EndpointPath, body=m.TrafficChange, status=202, errors=(400, 404, 409, 503),
          role=OPERATOR),
    Route("POST", "ops/rollouts", "ops_rollouts", "Start a rollout of a model version", h.start_rollout,
          m.Rollout, body=m.StartRollout, status=202, errors=(400, 404, 409, 503), role=OPERATOR,
          elevated=Elevated(ADMIN, "restart: true", lambda request: request.restart)),
    Route("GET", "ops/rollouts", "ops_rollouts", "Rollouts, newest first, with their last history entry",
          h.list_rollouts, m.Rollouts, query=m.RolloutFilter),
    Route("GET", "ops/rollouts/{workspace}/{endpoint}", "ops_rollout",
          "An endpoint's rollout with its full history and the endpoint's live traffic", h.get_rollout, m.Rollout,
          params=m.EndpointPath, errors=(400, 404)),
    Route("POST", "ops/rollouts/{workspace}/{endpoint}/{action}", "ops_rollout_action",
          "Pause, resume, approve, promote (one step, or full with a reason), abort or undo an endpoint's rollout",
          h.rollout_action, m.Rollout, params=m.ActionPath, body=m.ActionRequest, errors=(400, 404, 409, 503),
          role=OPERATOR, elevated=Elevated(ADMIN, "full: true", lambda where, request: request.full)),
    Route("GET", "ops/rollouts/{workspace}/{endpoint}/{action}", "ops_rollout_action",
          "`history`: the endpoint's finished rollouts, newest first, with their analyses and how they ended",
          h.rollout_history, m.Rollouts, params=m.HistoryPath, query=m.Paged, errors=(400,)),
    Route("POST", "ops/retrain", "ops_retrain", "Submit a rule's retraining pipeline (one job per request id)",
          h.retrain, m.RetrainSubmitted, body=m.RetrainRequest, status=202, errors=(400, 404, 409, 503),
          role=OPERATOR),
    Route("POST", "ops/events/replay", "ops_replay", "Replay a rejected or ignored event, or a dead-lettered item",
          h.replay, m.Replayed, body=m.ReplayRequest, errors=(400, 404, 409), role=OPERATOR),
    Route("GET", "ops/events/setaside", "ops_setaside",
          "Events set aside (rejected, ignored) and dead-lettered work items, newest first, with their replay keys",
          h.list_set_aside, m.SetAsideItems, query=m.SetAsideFilter),
    Route("GET", "ops/lifecycles", "ops_lifecycles", "Model lifecycles", h.list_lifecycles, m.Lifecycles,
          query=m.LifecycleFilter),
    Route("GET", "ops/lifecycles/{name}/{version}", "ops_lifecycle", "One model version's lifecycle",
          h.get_lifecycle, m.Lifecycle, params=m.LifecyclePath, errors=(400, 404)),
    Route("POST", "ops/lifecycles/{name}/{version}/review", "ops_review",
          "Approve or reject a version that waits for review (the rule's approvers' role; four eyes)", h.review,
          m.Lifecycle, params=m.LifecyclePath, body=m.ReviewRequest, errors=(400, 403, 404, 409, 503), role=APPROVER),
    Route("GET", "ops/champions/{rule}/history", "ops_champion_history",
          "A rule's champions, oldest first: who served from when to when, and why each stopped serving",
          h.champion_history, m.ChampionHistory, params=m.ChampionPath, errors=(400, 404)),
    Route("GET", "ops/audit", "ops_audit", "The audit trail, filtered; the most recent entries, oldest first",
          h.audit_log, m.AuditEntries, query=m.AuditFilter),
    Route("POST", "ops/policy/validate", "ops_policy_validate", "Validate a draft policy (YAML body)",
          h.validate_policy, m.PolicyValid, body=m.PolicyDraft, text_body=True, role=ADMIN),
    Route("GET", "ops/openapi.json", "ops_openapi", "This document", openapi, None, errors=()),
)


def by_function() -> dict[str, list[Route]]:
    """The routes each HTTP function serves; one path per function."""
    functions: dict[str, list[Route]] = {}
    for route in ROUTES:
        functions.setdefault(route.function, []).append(route)
    for name, routes in functions.items():
        if len({route.path for route in routes}) != 1:
            raise ValueError(f"function {name} serves more than one path")
        if len({route.key for route in routes}) != 1:
            raise ValueError(f"function {name} mixes routes with and without the function key")
    return functions
