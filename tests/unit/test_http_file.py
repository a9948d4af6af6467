"""`test.http` holds every HTTP call of the app, ready to send: each admin route of the route
table, each HTTP function of the app, and the Event Grid webhook (handshake and events)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.domain.events import parse_event
from shared.ops.route import Route
from shared.ops.routes import ROUTES
from tests.unit.app_index import http_triggers

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = "/runtime/webhooks/eventgrid"


@dataclass
class Call:
    title: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def path(self) -> str:
        return re.sub(r"^https?://[^/]+", "", self.url).split("?")[0]


def calls() -> list[Call]:
    """The requests of test.http with its `@name = value` variables filled in."""
    text = (ROOT / "test.http").read_text()
    variables = dict(re.findall(r"^@(\w+)\s*=\s*(.*)$", text, flags=re.MULTILINE))
    text = re.sub(r"\{\{(\w+)\}\}", lambda match: variables[match[1]], text)
    text = text.replace("{{$guid}}", "a3c5e7f9-0000-4000-8000-000000000001")
    found = []
    for block in text.split("\n###")[1:]:
        title, _, rest = block.partition("\n")
        head, _, body = rest.partition("\n\n")
        lines = [line for line in head.splitlines() if line.strip() and not line.startswith("#")]
        method, url = lines[0].split(maxsplit=1)
        headers = dict(line.split(": ", 1) for line in lines[1:])
        found.append(Call(title.strip(), method, url.strip(), {k.lower(): v for k, v in headers.items()},
                          body.strip()))
    return found


def served_by(template: str, call: Call) -> bool:
    pattern = re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape("/api/" + template))
    return re.fullmatch(pattern, call.path) is not None


def test_the_file_has_the_calls_and_its_variables() -> None:
    found = calls()
    assert len(found) >= len(ROUTES)
    assert all(call.url.startswith("http://127.0.0.1:7071/") for call in found)


@pytest.mark.parametrize("route", ROUTES, ids=[f"{route.method} {route.path}" for route in ROUTES])
def test_every_admin_route_is_in_the_file(route: Route) -> None:
    found = calls()
    assert any(call.method == route.method and served_by(route.path, call) for call in found), (
        f"test.http has no {route.method} /api/{route.path}"
    )


def test_every_http_function_of_the_app_is_in_the_file() -> None:
    functions = http_triggers()
    assert len(functions) > len({route.function for route in ROUTES}), "the scoring functions are HTTP too"
    methods_of: dict[str, set[str]] = {route.function: set() for route in ROUTES}
    for route in ROUTES:
        methods_of[route.function].add(route.method)
    for name, trigger in functions.items():
        methods = {str(method).upper() for method in trigger.get("methods") or []}
        methods = methods or methods_of.get(name, set())
        assert methods, name
        for method in methods:
            assert any(call.method == method and served_by(trigger["route"], call) for call in calls()), (
                f"test.http has no {method} /api/{trigger['route']} ({name})"
            )


def test_people_s_calls_carry_a_token_and_machines_calls_the_function_key() -> None:
    """The route table says which is which: a person's route never takes the key, a machine's never a token."""
    for call in calls():
        route = next((route for route in ROUTES if served_by(route.path, call) and route.method == call.method), None)
        if route is not None and route.role is not None:
            assert call.headers.get("authorization") == "Bearer <the output of: opsctl token>", call.title
            assert "x-functions-key" not in call.headers, call.title
        elif (route is not None and not route.key) or call.path.startswith("/api/ops/controlroom"):
            assert not {"authorization", "x-functions-key"} & set(call.headers), call.title
        elif call.path.startswith("/api/"):
            assert call.headers.get("x-functions-key") == "<functionKey from .localdev/connection.json>", call.title


def test_json_bodies_are_json() -> None:
    bodies = [call for call in calls() if "json" in call.headers.get("content-type", "")]
    assert len(bodies) >= 8
    for call in bodies:
        json.loads(call.body)


def test_the_webhook_has_the_handshake_and_events_of_both_schemas() -> None:
    hooks = [call for call in calls() if call.path == WEBHOOK]
    kinds = {call.headers["aeg-event-type"] for call in hooks}
    assert kinds == {"SubscriptionValidation", "Notification"}
    assert all("functionName=aml_events" in call.url and "code=" in call.url for call in hooks)
    schemas = set()
    for call in hooks:
        if call.headers["aeg-event-type"] == "Notification":
            body = json.loads(call.body)
            for raw in body if isinstance(body, list) else [body]:
                schemas.add(parse_event(raw).schema_name)
    assert schemas == {"eventgrid", "cloudevents"}
