"""Who may do what (issue 21): every role against every route of the admin API, through `serve` itself.

The matrix below is written out by hand, so that a change to the route table that gives a route to
another role fails here. A route's handler is swapped for a recorder: a call that reaches it was
allowed; every other answer must be 401 or a 403 naming the role that is missing. The verifier is a
fake of the port (the real one, against the local Entra stand-in, is in tests/integration).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared.domain.people import Person, Role
from shared.domain.ports import TokenRefused
from shared.ops.http import serve
from shared.ops.route import Route
from shared.ops.routes import ROUTES
from tests.unit.test_isolation_fakes import fake_services

READER, OPERATOR, APPROVER, ADMIN = Role.READER, Role.OPERATOR, Role.APPROVER, Role.ADMIN
PUBLIC, KEY = "public", "function key"

# operation -> (role it needs, role its elevated requests need, the sample request: path params, body)
MATRIX: dict[str, tuple[str, str | None, dict[str, str], Any]] = {
    "health": (KEY, None, {}, None),
    "sign_in": (PUBLIC, None, {}, None),
    "openapi": (READER, None, {}, None),
    "promote": (OPERATOR, ADMIN, {"location": "dev", "name": "churn", "version": "1"}, {}),
    "change_traffic": (OPERATOR, None, {"workspace": "prod", "endpoint": "churn"}, {"traffic": {"blue": 100}}),
    "start_rollout": (OPERATOR, ADMIN, {}, {"model": {"location": "registry:shared", "name": "churn",
                                                      "version": "1"}, "rule": "churn"}),
    "list_rollouts": (READER, None, {}, None),
    "get_rollout": (READER, None, {"workspace": "prod", "endpoint": "churn"}, None),
    "rollout_action": (OPERATOR, ADMIN, {"workspace": "prod", "endpoint": "churn", "action": "promote"}, {}),
    "rollout_history": (READER, None, {"workspace": "prod", "endpoint": "churn", "action": "history"}, None),
    "retrain": (OPERATOR, None, {}, {"rule": "churn", "request_id": "r-1"}),
    "replay": (OPERATOR, None, {}, {"kind": "rejected", "key": "k-1"}),
    "list_set_aside": (READER, None, {}, None),
    "list_lifecycles": (READER, None, {}, None),
    "get_lifecycle": (READER, None, {"name": "churn", "version": "1"}, None),
    "review": (APPROVER, None, {"name": "churn", "version": "1"}, {"decision": "approve", "reason": "ok"}),
    "champion_history": (READER, None, {"rule": "churn"}, None),
    "audit_log": (READER, None, {}, None),
    "validate_policy": (ADMIN, None, {}, "rules: []"),
}
ELEVATING = {"promote": {"force": True, "reason": "hotfix"}, "start_rollout": {"restart": True},
             "rollout_action": {"full": True, "reason": "urgent"}}
PEOPLE = {"nobody": frozenset(), **{role.name.lower(): frozenset({role.value}) for role in Role},
          "other app's role": frozenset({"Other.Admin"})}
# Which roles satisfy which: a higher role includes the lower ones; approving is a duty of its own.
SATISFIES = {READER: {READER, OPERATOR, APPROVER, ADMIN}, OPERATOR: {OPERATOR, ADMIN}, APPROVER: {APPROVER},
             ADMIN: {ADMIN}}


class Tokens:
    """The TokenVerifier port: a token names a person of PEOPLE."""

    def verify(self, token: str) -> Person:
        if token not in PEOPLE:
            raise TokenRefused("the token is not signed by one of the tenant's keys")
        return Person(oid=f"oid-{token}", name=token, roles=PEOPLE[token], upn=f"{token}@contoso.test")


def call(route: Route, who: str | None, body: Any = None, headers: dict[str, str] | None = None) -> tuple[
        func.HttpResponse, list[Any]]:
    """Serve `route`'s sample request as `who` (None: no token), with a recorder in the handler's place."""
    calls: list[Any] = []
    recorder = dataclasses.replace(route, handler=lambda *args: calls.append(args) or {}, response=None,
                                   status_of=None)
    services = fake_services()
    services._identities = Tokens()
    _, _, params, sample = MATRIX[route.operation_id]
    body = sample if body is None else body
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode() if body is not None else b""
    request = func.HttpRequest(route.method, f"http://host/api/{route.path}", route_params=params, body=data,
                               headers={**({"Authorization": f"Bearer {who}"} if who else {}), **(headers or {})})
    return serve([recorder], request, lambda: services), calls


def test_the_matrix_names_every_route_and_the_table_agrees_with_it() -> None:
    assert {route.operation_id for route in ROUTES} == set(MATRIX)
    for route in ROUTES:
        needed = route.role.value if route.role else (KEY if route.key else PUBLIC)
        elevated = route.elevated.role.value if route.elevated else None
        assert (needed, elevated) == MATRIX[route.operation_id][:2], route.operation_id


@pytest.mark.parametrize("route", [route for route in ROUTES if route.role], ids=lambda route: route.operation_id)
@pytest.mark.parametrize("who", sorted(PEOPLE))
def test_every_role_against_every_route_is_allowed_or_refused_naming_the_missing_role(route: Route, who: str) -> None:
    needed, elevated, _, _ = MATRIX[route.operation_id]
    allowed = any(role in PEOPLE[who] for role in SATISFIES[Role(needed)])
    response, calls = call(route, who)
    if allowed:
        assert len(calls) == 1, response.get_body()
        caller = calls[0][-1]
        assert (caller.person.oid, caller.person.roles) == (f"oid-{who}", PEOPLE[who])
    else:
        assert response.status_code == 403 and not calls
        assert f"needs the app role {needed}" in json.loads(response.get_body())["error"]
    if elevated:
        body = {**MATRIX[route.operation_id][3], **ELEVATING[route.operation_id]}
        response, calls = call(route, who, body)
        if any(role in PEOPLE[who] for role in SATISFIES[Role(elevated)]):
            assert len(calls) == 1
        else:
            assert response.status_code == 403 and not calls
            missing = elevated if allowed else needed  # the route's own role is checked first
            assert f"needs the app role {missing}" in json.loads(response.get_body())["error"]


FORGED = {
    "x-ms-client-principal": "eyJhdXRoX3R5cCI6ImFhZCIsImNsYWltcyI6W3sidHlwIjoicm9sZXMiLCJ2YWwiOiJNTE9wcy5BZG1pbiJ9XX0=",
    "x-ms-client-principal-name": "bob@contoso.test",
    "x-ms-client-principal-id": "oid-approver",
    "x-functions-key": "the-function-key",
}


@pytest.mark.parametrize("route", [route for route in ROUTES if route.role], ids=lambda route: route.operation_id)
def test_without_a_verified_token_every_person_s_route_answers_401_whatever_headers_say(route: Route) -> None:
    for who, headers in ((None, FORGED), ("forged-token", FORGED), (None, {"Authorization": "Basic Ym9iOmJvYg=="})):
        response, calls = call(route, who, headers=headers)
        assert response.status_code == 401 and not calls
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert "sign in" in json.loads(response.get_body())["error"] or "refused" in json.loads(response.get_body())[
            "error"] or "not signed" in json.loads(response.get_body())["error"]


def test_the_audit_trail_of_an_action_records_the_verified_oid_and_name() -> None:
    route = next(route for route in ROUTES if route.operation_id == "replay")
    _response, calls = call(route, "operator")
    assert len(calls) == 1
    caller = calls[0][-1]
    assert (caller.actor, caller.name, caller.person.oid) == ("api:operator", "operator", "oid-operator")


@pytest.mark.parametrize("route", [route for route in ROUTES if route.role is None], ids=lambda r: r.operation_id)
def test_machines_and_public_routes_need_no_person(route: Route) -> None:
    _response, calls = call(route, None)
    assert len(calls) == 1 and calls[0][-1].person is None


def test_without_the_app_s_registration_in_the_settings_people_s_routes_say_what_to_set() -> None:
    route = next(route for route in ROUTES if route.operation_id == "list_lifecycles")
    services = fake_services()
    request = func.HttpRequest("GET", "http://host/api/ops/lifecycles", body=b"",
                               headers={"Authorization": "Bearer reader"})
    response = serve([route], request, lambda: services)
    assert response.status_code == 503
    assert "MLOPS_AUTH_TENANT_ID and MLOPS_AUTH_CLIENT_ID" in json.loads(response.get_body())["error"]


def test_the_docs_matrix_is_the_route_table_s() -> None:
    readme = (Path(__file__).parents[2] / "docs" / "admin-api.md").read_text()
    for route in ROUTES:
        needed = route.role.value if route.role else (KEY if route.key else "anyone")
        more = f"{route.elevated.role.value}: `{route.elevated.when}`" if route.elevated else ""
        assert f"| {route.method} | `{route.path}` | {needed} | {more} |" in readme, route.operation_id
