"""opsctl against a real HTTP server on loopback that answers like the admin API: what it
sends (method, path, query, body, function key, bearer token) and what it prints (tables,
`--json`, `--watch`), and how people sign in: through a fake credential where opsctl builds
azure-identity's (azure-identity itself is not tested here)."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import pytest

from opsctl import auth, cli
from opsctl.client import route_access
from shared.ops.routes import ROUTES

EVENT_ID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
CORRELATION = "0123456789abcdef0123456789abcdef"
TENANT = "22222222-2222-2222-2222-222222222222"
APP_CLIENT = "11111111-1111-1111-1111-111111111111"
OPSCTL_CLIENT = "33333333-3333-3333-3333-333333333333"
# As the local Entra ID stand-in answers for an app on this machine.
SIGNIN = {"authority": f"https://127.0.0.1:8443/{TENANT}", "tenant_id": TENANT, "client_id": APP_CLIENT,
          "scope": f"{APP_CLIENT}/.default", "opsctl_client_id": OPSCTL_CLIENT}
ALICE = {"name": "Alice Admin", "preferred_username": "alice@contoso.test", "upn": "alice@contoso.test",
         "oid": "aaaaaaaa-0000-0000-0000-000000000001", "tid": TENANT, "aud": APP_CLIENT,
         "roles": ["MLOps.Admin", "MLOps.Approver"], "exp": 1_900_000_000}


def jwt(claims: dict[str, Any]) -> str:
    """A token shaped like Entra's (header.claims.signature); nothing here verifies it."""
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


TOKEN = jwt(ALICE)


@dataclass
class FakeToken:
    token: str
    expires_on: int


@dataclass
class FakeRecord:
    authority: str = "127.0.0.1:8443"

    def serialize(self) -> str:
        return json.dumps({"authority": self.authority, "clientId": OPSCTL_CLIENT, "homeAccountId": "uid.utid",
                           "tenantId": TENANT, "username": ALICE["preferred_username"], "version": "1.0"})


@dataclass
class FakeCredential:
    token: str
    fails: BaseException | None = None
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str) -> FakeToken:
        self.scopes.append(scopes)
        if self.fails is not None:
            raise self.fails
        return FakeToken(self.token, int(time.time()) + 3600)

    def authenticate(self, *, scopes: list[str]) -> FakeRecord:
        if self.fails is not None:
            raise self.fails
        return FakeRecord()


@dataclass
class FakeCredentials:
    """Stands where opsctl builds azure-identity's credentials: records what it was asked to make."""

    token: str = TOKEN
    fails: BaseException | None = None
    made: list[tuple[str, auth.SignIn, str | None]] = field(default_factory=list)

    def __call__(self, how: str, signin: auth.SignIn, record: str | None, err: TextIO) -> FakeCredential:
        self.made.append((how, signin, record))
        return FakeCredential(self.token, self.fails)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    key: str | None
    body: Any
    authorization: str | None = None


@dataclass
class FakeApi:
    """Answers `(method, path)` with the document set for it (404 in the API's shape otherwise)."""

    url: str = ""
    # (method, path) -> (status, document, or a function of the request that makes it)
    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)  # raised while serving, other than a client hanging up
    credentials: FakeCredentials = field(default_factory=FakeCredentials)
    config: Path = Path()

    def answer(self, method: str, path: str, document: Any, status: int = 200) -> None:
        self.answers[(method, "/api/" + path)] = (status, document)

    def paths(self) -> list[tuple[str, str]]:
        return [(seen.method, seen.path) for seen in self.seen]


@pytest.fixture
def unsigned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """The fake API, answering `ops/signin` as an app on this machine does; nobody signed in yet."""
    fake = FakeApi(config=tmp_path / "opsctl-config")
    monkeypatch.setenv("OPSCTL_CONFIG_DIR", str(fake.config))
    monkeypatch.delenv("OPSCTL_CREDENTIAL", raising=False)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode()
            seen = Seen(self.command, url.path, dict(urllib.parse.parse_qsl(url.query)),
                        self.headers.get("x-functions-key"), body, self.headers.get("Authorization"))
            fake.seen.append(seen)
            status, document = fake.answers.get(
                (self.command, url.path), (404, {"error": f"no route {url.path}", "field": None}))
            if callable(document):
                document = document(seen)
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve  # noqa: N815 (the names http.server calls)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            """Kept for the fixture to check, never printed into the stderr a test captures."""
            error = sys.exc_info()[1]
            if error is not None and not isinstance(error, ConnectionError):
                fake.errors.append(error)

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    fake.answer("GET", "ops/signin", SIGNIN)
    yield fake
    server.shutdown()
    server.server_close()
    assert not fake.errors, f"the fake API failed while serving: {fake.errors!r}"


@pytest.fixture
def api(unsigned: FakeApi) -> FakeApi:
    """The fake API, with Alice signed in (`opsctl login`, by device code through the fake credential)."""
    assert run(unsigned, "login")[0] == 0
    unsigned.seen.clear()
    return unsigned


def run(api: FakeApi, *argv: str, key: str = "function-key") -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--url", api.url, f"--key={key}", *argv], out=out, credentials=api.credentials)
    return code, out.getvalue()


def rollout_record(state: str = "succeeded", history: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "credit-risk/credit-risk-v2", "key": "prod.credit-risk", "workspace": "prod", "endpoint": "credit-risk",
        "deployment": "credit-risk-v2", "rule": "credit-risk", "model": "credit-risk", "version": "2",
        "state": state, "phase": "step", "step": 1, "plan": {"steps": [50, 100], "manual_gates": []},
        "baseline": {"traffic": {"credit-risk-v1": 100}, "mirror": {}}, "target": None,
        "started": "2026-11-30T10:00:00+00:00", "finished": "2026-11-30T10:05:00+00:00",
        "history": history if history is not None else [
            {"time": "2026-11-30T10:05:00+00:00", "action": "succeeded", "actor": "timer", "reason": "all gates passed",
             "traffic": None},
        ],
        **extra,
    }


LIVE = {"workspace": "prod", "name": "credit-risk", "provisioning_state": "Succeeded",
        "traffic": {"credit-risk-v2": 100}, "mirror_traffic": {}, "deployments": {"credit-risk-v2": "Succeeded"}}
LIFECYCLE = {"model": "credit-risk", "version": "2", "workspace": "dev", "rule": "credit-risk", "stage": "live",
             "history": [{"stage": "testing", "time": "2026-11-30T09:00:00+00:00", "cause": EVENT_ID,
                          "reason": "test job test-credit-risk-v2 submitted"}]}


# Every route has a command ----------------------------------------------------------------

COMMANDS: dict[tuple[str, str], tuple[list[str], str, Any]] = {
    # route (method, path) -> argv, the concrete path it calls, the document the fake answers
    ("GET", "ops/signin"): (["signin-info"], "ops/signin", SIGNIN),
    ("GET", "ops/health"): (["health"], "ops/health", {
        "ok": True, "platform": "azureml", "policy": {"ok": True, "detail": "1 rule"},
        "storage": {"ok": True, "detail": "state"}}),
    ("POST", "ops/models/{location}/{name}/{version}/promote"): (
        ["promote-model", "dev", "credit-risk", "2", "--target", "registry:shared"],
        "ops/models/dev/credit-risk/2/promote",
        {"model": "credit-risk", "version": "2", "source": "dev", "promoted": {"registry:shared": "azureml://x"}}),
    ("POST", "ops/endpoints/{workspace}/{endpoint}/traffic"): (
        ["traffic", "prod", "credit-risk", "credit-risk-v1=90", "credit-risk-v2=10"],
        "ops/endpoints/prod/credit-risk/traffic",
        {"workspace": "prod", "endpoint": "credit-risk", "traffic": {"credit-risk-v1": 90, "credit-risk-v2": 10},
         "mirror_traffic": {}, "rollout_state": "paused"}),
    ("POST", "ops/rollouts"): (
        ["start-rollout", "registry:shared", "credit-risk", "2", "--rule", "credit-risk"], "ops/rollouts",
        rollout_record("progressing")),
    ("GET", "ops/rollouts"): (["rollouts", "--json"], "ops/rollouts", {"items": [rollout_record()]}),
    ("GET", "ops/rollouts/{workspace}/{endpoint}"): (
        ["rollout", "prod", "credit-risk", "--json"], "ops/rollouts/prod/credit-risk", rollout_record(live=LIVE)),
    ("POST", "ops/rollouts/{workspace}/{endpoint}/{action}"): (
        ["pause", "prod", "credit-risk", "--reason", "error budget"], "ops/rollouts/prod/credit-risk/pause",
        rollout_record("paused")),
    ("GET", "ops/rollouts/{workspace}/{endpoint}/{action}"): (
        ["history", "prod", "credit-risk"], "ops/rollouts/prod/credit-risk/history",
        {"items": [rollout_record(), rollout_record("rolled_back")]}),
    ("POST", "ops/retrain"): (
        ["retrain", "credit-risk", "--request-id", "r-1"], "ops/retrain",
        {"rule": "credit-risk", "workspace": "dev", "job": "retrain-credit-risk-r-1", "status": "Running"}),
    ("POST", "ops/events/replay"): (
        ["replay", "deadletter", "abc"], "ops/events/replay",
        {"kind": "deadletter", "key": "abc", "outcome": "requeued"}),
    ("GET", "ops/events/setaside"): (
        ["setaside", "--kind", "rejected"], "ops/events/setaside",
        {"items": [{"kind": "rejected", "key": "k1", "reason": "data.modelName: missing", "time": "2026-11-30T10:00:00",
                    "event_id": "e1", "event_type": "Microsoft.MachineLearningServices.ModelRegistered",
                    "subject": "models/x:1"}]}),
    ("GET", "ops/lifecycles"): (["lifecycles", "--stage", "live"], "ops/lifecycles", {"items": [LIFECYCLE]}),
    ("GET", "ops/champions/{rule}/history"): (
        ["champions", "credit-risk"], "ops/champions/credit-risk/history",
        {"rule": "credit-risk", "terms": [
            {"model": "credit-risk", "version": "1", "endpoint": "credit-risk", "since": "2026-11-30T10:00:00",
             "until": "2026-11-30T11:00:00", "began": "rolled out on credit-risk", "ended": "replaced by v2"},
            {"model": "credit-risk", "version": "2", "endpoint": "credit-risk", "since": "2026-11-30T11:00:00",
             "until": None, "began": "rolled out on credit-risk", "ended": None}]}),
    ("GET", "ops/lifecycles/{name}/{version}"): (
        ["lifecycle", "credit-risk", "2", "--json"], "ops/lifecycles/credit-risk/2", LIFECYCLE),
    ("POST", "ops/lifecycles/{name}/{version}/review"): (
        ["review", "approve", "credit-risk", "2", "--reason", "looks good"], "ops/lifecycles/credit-risk/2/review",
        {**LIFECYCLE, "stage": "promoted"}),
    ("GET", "ops/audit"): (["audit", "--limit", "5"], "ops/audit", {"items": []}),
    ("POST", "ops/policy/validate"): (["validate-policy", "POLICY_FILE"], "ops/policy/validate",
                                      {"valid": True, "rules": ["credit-risk"]}),
    ("GET", "ops/openapi.json"): (["openapi"], "ops/openapi.json", {"openapi": "3.1.0", "paths": {}}),
}


def access(route: Any) -> str:
    """What the route table says a route takes: the function key (machines), nothing, or a person's token."""
    return "key" if route.key else "public" if route.role is None else "person"


def test_every_admin_route_has_a_command_that_calls_it(api: FakeApi, tmp_path: Path) -> None:
    """...with what the route takes: the person's token as Bearer and no key on people's routes,
    the key and no token on machines' (health), neither on the public ops/signin."""
    routes = {(route.method, route.path) for route in ROUTES}
    missing = routes - COMMANDS.keys()
    assert not missing, f"routes without an opsctl command (add one, and a line here): {missing}"
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: []\n")
    takes = {(route.method, route.path): access(route) for route in ROUTES}
    assert set(takes.values()) == {"key", "public", "person"}
    for route in sorted(routes):
        argv, path, document = COMMANDS[route]
        api.seen.clear()
        api.answer(route[0], path, document)
        code, out = run(api, *[str(policy) if arg == "POLICY_FILE" else arg for arg in argv])
        assert code == 0, (argv, out)
        assert (route[0], "/api/" + path) in api.paths(), (argv, api.paths())
        assert out.strip(), argv
        assert TOKEN not in out, argv  # only `opsctl token` prints one
        assert route_access(path) == takes[route], route
        sent = {(seen.key, seen.authorization) for seen in api.seen}
        expected = {"key": ("function-key", None), "public": (None, None), "person": (None, f"Bearer {TOKEN}")}
        assert sent == {expected[takes[route]]}, (route, sent)
    assert all(TOKEN not in seen.path and TOKEN not in str(seen.query) for seen in api.seen)


def test_requests_carry_what_the_user_gave_and_nothing_the_cli_invented(api: FakeApi) -> None:
    """No vocabulary of states or stages in the CLI: the API validates and names the field."""
    api.answer("GET", "ops/rollouts", {"error": "state: Input should be 'progressing', ...", "field": "state"}, 400)
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stderr", err)
        code, _ = run(api, "rollouts", "--state", "sideways")
    assert code == 1
    assert api.seen[0].query == {"state": "sideways"}
    assert err.getvalue().strip() == (
        "opsctl rollouts: 400: state: Input should be 'progressing', ... (field: state)")


def test_bodies_of_the_write_commands(api: FakeApi) -> None:
    api.answer("POST", "ops/endpoints/prod/credit-risk/traffic", COMMANDS[
        ("POST", "ops/endpoints/{workspace}/{endpoint}/traffic")][2])
    api.answer("POST", "ops/rollouts", rollout_record("progressing"))
    api.answer("POST", "ops/events/replay", {"kind": "ignored", "key": "k", "outcome": "queued"})
    assert run(api, "traffic", "prod", "credit-risk", "a-v1=90", "a-v2=10", "--mirror", "a-v3=10")[0] == 0
    assert run(api, "start-rollout", "registry:shared", "credit-risk", "2", "--rule", "credit-risk")[0] == 0
    assert run(api, "replay", "ignored", "k")[0] == 0
    api.answer("POST", "ops/lifecycles/credit-risk/3/review", {**LIFECYCLE, "version": "3", "stage": "rejected"})
    assert run(api, "review", "reject", "credit-risk", "3", "--reason", "drift on segment B")[0] == 0
    assert [seen.body for seen in api.seen] == [
        {"traffic": {"a-v1": 90, "a-v2": 10}, "mirror_traffic": {"a-v3": 10}},
        {"model": {"location": "registry:shared", "name": "credit-risk", "version": "2"}, "rule": "credit-risk"},
        {"kind": "ignored", "key": "k"},
        {"decision": "reject", "reason": "drift on segment B"},
    ]


def test_replay_sends_the_record_key_in_the_body_and_the_token_not_the_function_key(api: FakeApi) -> None:
    """`replay KIND KEY` once wrote KEY over `--key`, so every replay answered 401."""
    api.answer("POST", "ops/events/replay", {"kind": "deadletter", "key": "abc", "outcome": "requeued"})
    code, out = run(api, "replay", "deadletter", "abc", key="the-function-key")
    assert code == 0 and out.strip() == "replayed deadletter abc: requeued"
    assert (api.seen[0].key, api.seen[0].authorization, api.seen[0].body) == (
        None, f"Bearer {TOKEN}", {"kind": "deadletter", "key": "abc"})


def test_a_malformed_traffic_split_fails_before_any_request(api: FakeApi, capsys: pytest.CaptureFixture) -> None:
    code, _ = run(api, "traffic", "prod", "credit-risk", "blue=ninety")
    assert code == 1 and api.seen == []
    assert "traffic: expected deployment=percent, got 'blue=ninety'" in capsys.readouterr().err


# --json -----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["rollouts"], ["rollout", "prod", "credit-risk"], ["lifecycles"],
                                  ["lifecycle", "credit-risk", "2"], ["setaside"], ["health"]])
def test_json_prints_the_apis_document_as_it_answered(api: FakeApi, argv: list[str]) -> None:
    documents = {
        "ops/rollouts": {"items": [rollout_record()]}, "ops/rollouts/prod/credit-risk": rollout_record(live=LIVE),
        "ops/lifecycles": {"items": [LIFECYCLE]}, "ops/lifecycles/credit-risk/2": LIFECYCLE,
        "ops/events/setaside": COMMANDS[("GET", "ops/events/setaside")][2],
        "ops/health": COMMANDS[("GET", "ops/health")][2],
    }
    for path, document in documents.items():
        api.answer("GET", path, document)
    code, out = run(api, *argv, "--json")
    assert code == 0
    (called,) = {seen.path for seen in api.seen}  # one request: --json adds nothing the API did not answer
    assert json.loads(out) == documents[called.removeprefix("/api/")]
    code, before = run(api, "--json", *argv)  # the global flag works too
    assert json.loads(before) == json.loads(out)


# Tables -----------------------------------------------------------------------------------


def test_the_traffic_column_shows_the_live_split_of_an_ended_rollout(api: FakeApi) -> None:
    """It showed the split from before the rollout (the baseline) once the rollout had ended."""
    api.answer("GET", "ops/rollouts", {"items": [rollout_record()]})
    api.answer("GET", "ops/rollouts/prod/credit-risk", rollout_record(live=LIVE))
    code, out = run(api, "rollouts")
    header, _, row = out.splitlines()
    assert code == 0 and header.split()[5] == "traffic"
    assert "credit-risk-v2=100%" in row and "credit-risk-v1" not in row


def test_actors_are_shown_by_name_not_by_id(api: FakeApi) -> None:
    history = [
        {"time": "2026-11-30T10:00:00+00:00", "action": "start", "actor": CORRELATION, "reason": "created"},
        {"time": "2026-11-30T10:01:00+00:00", "action": "pause", "actor": EVENT_ID, "reason": "event moved it"},
        {"time": "2026-11-30T10:02:00+00:00", "action": "step", "actor": "timer", "reason": "50%"},
    ]
    api.answer("GET", "ops/rollouts/prod/credit-risk", rollout_record("progressing", history, live=LIVE))

    def audit_for(correlation_id: str) -> dict[str, Any]:
        if correlation_id == CORRELATION:
            return {"items": [{"time": "2026-11-30T10:00:00", "correlation_id": CORRELATION, "subject": "x",
                               "action": "ops.rollout.start", "outcome": "done",
                               "reason": "credit-risk v2 on credit-risk (by api:alice@contoso.com)"}]}
        return {"items": [{"time": "2026-11-30T10:00:00", "correlation_id": EVENT_ID, "action": "intake",
                           "subject": "models/credit-risk:2", "outcome": "queued", "reason": "queued"}]}

    api.answer("GET", "ops/audit", lambda seen: audit_for(seen.query["correlation_id"]))
    code, out = run(api, "rollout", "prod", "credit-risk")
    assert code == 0
    assert "api:alice@contoso.com" in out and "event credit-risk:2" in out and "timer" in out
    assert CORRELATION not in out and EVENT_ID not in out
    assert {seen.query.get("since") for seen in api.seen if seen.path == "/api/ops/audit"} == {"2026-11-30"}


def test_long_reasons_wrap_within_the_terminal_instead_of_being_cut(api: FakeApi,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    reason = " ".join(f"gate{n} failed by a wide margin" for n in range(12))
    history = [{"time": "2026-11-30T10:00:00+00:00", "action": "rolled_back", "actor": "timer", "reason": reason,
                "traffic": {"credit-risk-v1": 100}}]
    api.answer("GET", "ops/rollouts/prod/credit-risk", rollout_record("rolled_back", history, live=LIVE))
    monkeypatch.setenv("COLUMNS", "80")
    code, out = run(api, "rollout", "prod", "credit-risk")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    assert reason.split() == [word for word in " ".join(out.split("reason", 1)[1].split()).split()
                              if word.startswith("gate") or word in ("failed", "by", "a", "wide", "margin")]


# --watch ----------------------------------------------------------------------------------


def test_watch_refreshes_until_its_count_and_prints_each_round(api: FakeApi) -> None:
    api.answer("GET", "ops/rollouts", {"items": [rollout_record()]})
    api.answer("GET", "ops/rollouts/prod/credit-risk", rollout_record(live=LIVE))
    code, out = run(api, "rollouts", "--watch", "0.05", "--count", "3")
    assert code == 0
    assert out.count("every 0.05 s") == 3 and out.count("prod/credit-risk") == 3
    assert [path for _, path in api.paths()].count("/api/ops/rollouts") == 3
    api.seen.clear()
    api.answer("GET", "ops/health", COMMANDS[("GET", "ops/health")][2])
    code, out = run(api, "--json", "status", "--watch", "0.05", "--count", "2")
    frames = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(frames) == 2 and frames[0]["rollouts"] == {"items": [rollout_record()]}


def test_watch_goes_on_through_an_error_and_ends_with_the_last_rounds_code(api: FakeApi,
                                                                             capsys: pytest.CaptureFixture) -> None:
    rounds: Iterator[cli.ApiFailure | cli.Shown] = iter([cli.ApiFailure("503: busy"), cli.Shown({}, "fine")])

    def once() -> cli.Shown:
        outcome = next(rounds)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    out = io.StringIO()
    assert cli.watch(once, 0, False, out, "status", count=2, sleep=lambda _: None) == 0
    assert "opsctl status: 503: busy" in out.getvalue() and out.getvalue().rstrip().endswith("fine")


# The function key ------------------------------------------------------------------------


def test_the_key_comes_from_the_local_key_file_by_default(api: FakeApi, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_FUNCTION_KEY", raising=False)
    monkeypatch.delenv("MLOPS_KEY_FILE", raising=False)
    (tmp_path / ".localdev").mkdir()
    (tmp_path / ".localdev" / "keys.json").write_text(json.dumps({"function": "from-file", "master": "m"}))
    api.answer("GET", "ops/health", COMMANDS[("GET", "ops/health")][2])
    assert cli.main(["--url", api.url, "health"], out=io.StringIO()) == 0
    monkeypatch.setenv("MLOPS_FUNCTION_KEY", "from-env")
    assert cli.main(["--url", api.url, "health"], out=io.StringIO()) == 0
    assert cli.main(["--url", api.url, "--key", "from-flag", "health"], out=io.StringIO()) == 0
    assert [seen.key for seen in api.seen] == ["from-file", "from-env", "from-flag"]
    assert {seen.authorization for seen in api.seen} == {None}  # the machines' route needs no sign-in


def test_a_persons_command_never_reads_the_key_file(api: FakeApi, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    api.answer("GET", "ops/lifecycles", {"items": []})
    api.answer("GET", "ops/health", COMMANDS[("GET", "ops/health")][2])
    broken = ["--url", api.url, "--key-file", str(tmp_path / "missing.json")]
    assert cli.main([*broken, "lifecycles"], out=io.StringIO(), credentials=api.credentials) == 0
    assert cli.main([*broken, "health"], out=io.StringIO(), credentials=api.credentials) == 1
    assert "opsctl health: cannot read the key file" in capsys.readouterr().err
    assert api.paths() == [("GET", "/api/ops/lifecycles")]


def test_a_wrong_key_is_named_as_the_problem(api: FakeApi, capsys: pytest.CaptureFixture) -> None:
    api.answer("GET", "ops/health", {"error": "unauthorized"}, 401)
    code, _ = run(api, "health", key="wrong")
    assert code == 1 and "401: the function key is missing or wrong" in capsys.readouterr().err


# Scoring ----------------------------------------------------------------------------------

JOB_ID = "score-0123456789abcdef01234567"
JOB: dict[str, Any] = {"job_id": JOB_ID, "state": "running", "input": "in/batch.csv",
       "output": "out/batch.scored.csv", "format": "csv", "ranges": {"total": 4, "done": 1}, "rows_done": 2500,
       "rows_per_second": 1200.5, "bad_rows": None, "error": None}


def test_score_submit_and_status(api: FakeApi) -> None:
    api.answer("POST", "score", JOB, 202)
    api.answer("GET", f"score/{JOB_ID}", {**JOB, "state": "completed"})
    code, out = run(api, "score", "submit", "in/batch.csv", "--model", "registry:shared/credit-risk/2",
                    "--id-column", "id", "--output-container", "out")
    assert code == 0 and "1/4 done" in out and JOB_ID in out
    assert (api.seen[0].key, api.seen[0].authorization) == ("function-key", None)  # a machines' route
    assert api.seen[0].body == {"input": "in/batch.csv", "id_columns": ["id"], "output": {"container": "out"},
                                "model": {"location": "registry:shared", "name": "credit-risk", "version": "2"}}
    code, out = run(api, "score", "status", JOB_ID, "--watch", "0.01", "--count", "2")
    assert code == 0 and out.count("completed") == 2


# Signing in -------------------------------------------------------------------------------


def test_login_saves_the_account_0600_and_later_commands_read_it_back_silently(unsigned: FakeApi) -> None:
    code, out = run(unsigned, "login")
    assert code == 0
    assert "Alice Admin (alice@contoso.test)" in out and "MLOps.Admin, MLOps.Approver" in out
    assert TOKEN not in out
    assert unsigned.paths() == [("GET", "/api/ops/signin")]
    [(how, signin, record)] = unsigned.credentials.made
    assert (how, record) == ("device-code", None)
    assert (signin.host, signin.tenant_id, signin.public_client_id, signin.scope, signin.loopback) == (
        "https://127.0.0.1:8443", TENANT, OPSCTL_CLIENT, f"{APP_CLIENT}/.default", True)
    records = list((unsigned.config / "records").iterdir())
    assert [path.name for path in records] == [f"127.0.0.1_8443.{TENANT}.{OPSCTL_CLIENT}.json"]
    for path in [*records, unsigned.config / "signins.json"]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert unsigned.config.stat().st_mode & 0o777 == 0o700
    assert (unsigned.config / "records").stat().st_mode & 0o777 == 0o700
    assert records[0].read_text() == FakeRecord().serialize()

    unsigned.seen.clear()
    unsigned.answer("GET", "ops/lifecycles", {"items": []})
    assert run(unsigned, "lifecycles")[0] == 0
    # The saved record, silently: no ops/signin again, no prompt.
    assert unsigned.credentials.made[-1][0::2] == ("saved", FakeRecord().serialize())
    assert unsigned.paths() == [("GET", "/api/ops/lifecycles")]
    assert unsigned.seen[0].authorization == f"Bearer {TOKEN}"


def test_not_signed_in_says_to_run_login_and_calls_nothing(unsigned: FakeApi, capsys: pytest.CaptureFixture) -> None:
    code, out = run(unsigned, "rollouts")
    assert (code, out) == (1, "")
    assert capsys.readouterr().err == "opsctl rollouts: not signed in: run opsctl login\n"
    assert unsigned.seen == [] and unsigned.credentials.made == []


def test_logout_forgets_the_sign_in(api: FakeApi, capsys: pytest.CaptureFixture) -> None:
    code, out = run(api, "logout")
    assert code == 0 and "signed out" in out
    assert list((api.config / "records").iterdir()) == []
    assert run(api, "whoami")[0] == 1
    assert "not signed in: run opsctl login" in capsys.readouterr().err
    assert run(api, "logout") == (0, f"not signed in to {api.url}: nothing to forget\n")


def test_whoami_shows_the_tokens_claims_and_token_prints_the_token_alone(api: FakeApi,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out = run(api, "whoami")
    assert code == 0 and api.seen == []  # read from the token, not asked of the app
    shown = dict(line.split(None, 1) for line in out.splitlines())
    assert shown["name"] == "Alice Admin" and shown["username"] == "alice@contoso.test"
    assert shown["upn"] == "alice@contoso.test" and shown["oid"] == ALICE["oid"]
    assert shown["roles"] == "MLOps.Admin, MLOps.Approver" and shown["app"] == APP_CLIENT
    assert "for display only" in shown["note"] and TOKEN not in out
    assert json.loads(run(api, "whoami", "--json")[1])["roles"] == ["MLOps.Admin", "MLOps.Approver"]
    assert run(api, "token") == (0, TOKEN + "\n")
    assert json.loads(run(api, "token", "--json")[1])["access_token"] == TOKEN


def test_a_401_says_to_sign_in_again_and_a_403_names_the_role(api: FakeApi,
                                                               capsys: pytest.CaptureFixture) -> None:
    api.answer("GET", "ops/lifecycles", {"error": "the token has expired", "field": None, "correlation_id": "c"}, 401)
    api.answer("POST", "ops/lifecycles/credit-risk/2/review", {
        "error": "this needs the app role MLOps.Approver; Dave holds MLOps.Reader", "field": None,
        "correlation_id": "c"}, 403)
    assert run(api, "lifecycles")[0] == 1
    assert capsys.readouterr().err == (
        "opsctl lifecycles: 401: the token has expired; sign in again: opsctl login\n")
    assert run(api, "review", "approve", "credit-risk", "2", "--reason", "ok")[0] == 1
    assert capsys.readouterr().err == (
        "opsctl review: 403: this needs the app role MLOps.Approver; Dave holds MLOps.Reader\n")


def test_the_azure_cli_gives_the_token_when_asked(unsigned: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    unsigned.answer("GET", "ops/lifecycles", {"items": []})
    assert run(unsigned, "--azure-cli", "lifecycles")[0] == 0
    assert unsigned.paths() == [("GET", "/api/ops/signin"), ("GET", "/api/ops/lifecycles")]
    assert [made[0] for made in unsigned.credentials.made] == ["azure-cli"]
    assert unsigned.seen[1].authorization == f"Bearer {TOKEN}"
    monkeypatch.setenv("OPSCTL_CREDENTIAL", "azure-cli")
    assert run(unsigned, "lifecycles")[0] == 0
    assert [made[0] for made in unsigned.credentials.made] == ["azure-cli", "azure-cli"]
    # `login --azure-cli` saves where to sign in, and later commands ask the Azure CLI.
    monkeypatch.delenv("OPSCTL_CREDENTIAL")
    assert run(unsigned, "login", "--azure-cli")[0] == 0
    assert not (unsigned.config / "records").exists()
    unsigned.seen.clear()
    assert run(unsigned, "lifecycles")[0] == 0
    assert unsigned.paths() == [("GET", "/api/ops/lifecycles")]
    assert unsigned.credentials.made[-1][0] == "azure-cli"


def test_an_unknown_credential_setting_is_refused(unsigned: FakeApi, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("OPSCTL_CREDENTIAL", "password")
    assert run(unsigned, "lifecycles")[0] == 1
    assert "$OPSCTL_CREDENTIAL must be azure-cli" in capsys.readouterr().err


@pytest.mark.parametrize(("authority", "refusal"), [
    ("https://login.evil.example/" + TENANT, "login.evil.example is not a Microsoft Entra login host"),
    ("https://login.microsoftonline.com.evil.example/" + TENANT, "is not a Microsoft Entra login host"),
    ("http://127.0.0.1:8443/" + TENANT, "it must be https://<login host>/<tenant>"),
    ("https://127.0.0.1:8443/common", f"its path must be the app's tenant {TENANT}"),
])
def test_login_refuses_an_authority_it_does_not_trust(unsigned: FakeApi, authority: str, refusal: str,
                                                      capsys: pytest.CaptureFixture) -> None:
    unsigned.answer("GET", "ops/signin", {**SIGNIN, "authority": authority})
    assert run(unsigned, "login") == (1, "")
    err = capsys.readouterr().err
    assert err.startswith(f"opsctl login: refusing to sign in at {authority!r}") and refusal in err
    assert "Traceback" not in err and unsigned.credentials.made == []
    assert not unsigned.config.exists()


REMOTE = "https://mlops-prod.azurewebsites.net"


@pytest.mark.parametrize(("authority", "app", "host", "loopback"), [
    (f"https://login.microsoftonline.com/{TENANT}", REMOTE, "https://login.microsoftonline.com", False),
    (f"https://login.microsoftonline.us/{TENANT}/", REMOTE, "https://login.microsoftonline.us", False),
    (f"https://LOGIN.chinacloudapi.cn/{TENANT}", REMOTE, "https://login.chinacloudapi.cn", False),
    (f"https://login.partner.microsoftonline.cn/{TENANT}", REMOTE, "https://login.partner.microsoftonline.cn", False),
    (f"https://login.microsoftonline.com/{TENANT}", "http://127.0.0.1:7071", "https://login.microsoftonline.com",
     False),
    (f"https://127.0.0.1:8443/{TENANT}", "http://127.0.0.1:7071", "https://127.0.0.1:8443", True),
    (f"https://localhost:8443/{TENANT}", "http://localhost:7071", "https://localhost:8443", True),
    (f"https://[::1]:8443/{TENANT}", "http://[::1]:7071", "https://[::1]:8443", True),
])
def test_the_authorities_opsctl_trusts(authority: str, app: str, host: str, loopback: bool) -> None:
    signin = auth.SignIn.checked({**SIGNIN, "authority": authority}, app)
    assert (signin.host, signin.loopback) == (host, loopback)


@pytest.mark.parametrize(("change", "refusal"), [
    ({"authority": f"https://127.0.0.1:8443/{TENANT}"}, "a loopback authority is trusted only for an app on this "
                                                        f"machine, and {REMOTE} is not"),
    ({"authority": f"https://localhost/{TENANT}"}, "a loopback authority is trusted only for an app on this machine"),
    ({"authority": f"https://[::1]:8443/{TENANT}"}, "a loopback authority is trusted only for an app on this machine"),
    ({"authority": f"https://login.microsoftonline.com:8443/{TENANT}"}, "Microsoft Entra answers on port 443 only"),
    ({"authority": f"https://sts.contoso.example/{TENANT}"}, "sts.contoso.example is not a Microsoft Entra login"),
    ({"authority": f"https://login.microsoftonline.com/{TENANT}?x=1"}, "it must be https://<login host>/<tenant>"),
    ({"scope": "https://management.azure.com/.default"}, "not for itself"),
    ({"client_id": "not-a-guid", "scope": "not-a-guid/.default"}, "client_id is not a GUID"),
    ({"tenant_id": None}, "lacks tenant_id"),
])
def test_a_remote_app_naming_a_place_opsctl_does_not_trust_is_refused(change: dict[str, Any],
                                                                       refusal: str) -> None:
    answer = {**SIGNIN, "authority": f"https://login.microsoftonline.com/{TENANT}", **change}
    with pytest.raises(cli.ApiFailure, match=r"refus|lacks|GUID") as refused:
        auth.SignIn.checked(answer, REMOTE)
    assert refusal in str(refused.value)


def test_a_token_goes_over_https_or_to_this_machine_only() -> None:
    auth.check_transport(REMOTE)
    auth.check_transport("http://127.0.0.1:7071")
    with pytest.raises(cli.ApiFailure, match=r"refusing to send a token to http://mlops\.example\.com"):
        auth.check_transport("http://mlops.example.com")


def test_sign_in_failures_are_one_line_without_a_traceback(unsigned: FakeApi, capsys: pytest.CaptureFixture) -> None:
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
    from azure.identity import AuthenticationRequiredError

    unsigned.credentials.fails = ClientAuthenticationError(message="Timed out waiting for user to authenticate")
    assert run(unsigned, "login")[0] == 1
    assert capsys.readouterr().err == "opsctl login: sign-in failed: Timed out waiting for user to authenticate\n"
    unsigned.credentials.fails = ServiceRequestError("Connection refused\nmore detail")
    assert run(unsigned, "login")[0] == 1
    assert capsys.readouterr().err == "opsctl login: sign-in failed: Connection refused\n"
    unsigned.credentials.fails = None
    assert run(unsigned, "login")[0] == 0
    unsigned.credentials.fails = AuthenticationRequiredError(scopes=[SIGNIN["scope"]])
    assert run(unsigned, "rollouts")[0] == 1
    err = capsys.readouterr().err
    assert err.startswith("opsctl rollouts: the saved sign-in gives no token any more") and "run opsctl login" in err
    unsigned.credentials.fails = KeyboardInterrupt()
    assert run(unsigned, "login")[0] == 130
    assert capsys.readouterr().err == "opsctl login: interrupted\n"


def test_an_app_without_sign_in_configured_says_so(unsigned: FakeApi, capsys: pytest.CaptureFixture) -> None:
    unsigned.answer("GET", "ops/signin", {"error": "sign-in is not configured: set MLOPS_AUTH_TENANT_ID and "
                                                   "MLOPS_AUTH_CLIENT_ID", "field": None}, 503)
    assert run(unsigned, "login")[0] == 1
    assert capsys.readouterr().err.startswith("opsctl login: 503: sign-in is not configured")


def test_signin_info_shows_where_and_whether_opsctl_signs_in_there(unsigned: FakeApi,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out = run(unsigned, "signin-info")
    assert code == 0 and f"signs in at https://127.0.0.1:8443/{TENANT} as client {OPSCTL_CLIENT}" in out
    unsigned.answer("GET", "ops/signin", {**SIGNIN, "authority": f"https://evil.example/{TENANT}"})
    code, out = run(unsigned, "signin-info")
    assert code == 0 and "refusing to sign in" in out


class Recorder:
    """Stands in for an azure-identity class: keeps the arguments opsctl builds it with."""

    built: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Recorder.built.append((type(self).__name__, args, kwargs))


def test_the_azure_identity_credentials_opsctl_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Device code with the prompt on stderr, the browser, the Azure CLI, the saved record: each with the
    tenant, the shared persistent cache, and no instance discovery only for a loopback authority."""
    from azure import identity

    for name in ("DeviceCodeCredential", "InteractiveBrowserCredential", "AzureCliCredential"):
        monkeypatch.setattr(identity, name, type(name, (Recorder,), {}))
    Recorder.built = []
    local = auth.SignIn.checked(SIGNIN, "http://127.0.0.1:7071")
    remote = auth.SignIn.checked({**SIGNIN, "authority": f"https://login.microsoftonline.com/{TENANT}"}, REMOTE)
    err = io.StringIO()
    for signin in (local, remote):
        auth.azure_identity("device-code", signin, None, err)
        auth.azure_identity("browser", signin, None, err)
        auth.azure_identity("saved", signin, FakeRecord().serialize(), err)
    auth.azure_identity("azure-cli", remote, None, err)
    kinds = [kind for kind, _, _ in Recorder.built]
    assert kinds == ["DeviceCodeCredential", "InteractiveBrowserCredential", "DeviceCodeCredential"] * 2 + [
        "AzureCliCredential"]
    for index, (_, _, kwargs) in enumerate(Recorder.built[:6]):
        assert kwargs["tenant_id"] == TENANT
        cache = kwargs["cache_persistence_options"]
        assert (cache.name, cache.allow_unencrypted_storage) == ("opsctl", True)
        assert kwargs.get("disable_instance_discovery") is (True if index < 3 else None)
        assert "redirect_uri" not in kwargs  # azure-identity's http://localhost:<port>
    device, browser, saved = Recorder.built[:3]
    assert device[1] == (OPSCTL_CLIENT,) and device[2]["authority"] == "https://127.0.0.1:8443"
    assert browser[2]["client_id"] == OPSCTL_CLIENT and browser[2]["authority"] == "https://127.0.0.1:8443"
    assert saved[2]["disable_automatic_authentication"] is True and "authority" not in saved[2]
    assert saved[2]["authentication_record"].username == "alice@contoso.test"
    assert Recorder.built[3][2]["authority"] == "https://login.microsoftonline.com"
    assert Recorder.built[6][2] == {"tenant_id": TENANT}
    # The device code's prompt: Entra's own instruction line, on stderr.
    device[2]["prompt_callback"]("https://127.0.0.1:8443/devicelogin", "ABCD-1234", datetime.now(UTC))
    assert err.getvalue().splitlines()[0] == (
        "To sign in, use a web browser to open the page https://127.0.0.1:8443/devicelogin and enter the code "
        "ABCD-1234 to authenticate.")


def test_the_app_falls_back_to_its_own_registration_without_an_opsctl_client() -> None:
    signin = auth.SignIn.checked({**SIGNIN, "opsctl_client_id": None}, "http://127.0.0.1:7071")
    assert signin.public_client_id == APP_CLIENT


def test_for_a_local_app_the_stack_s_ca_is_trusted_unless_one_is_named(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from opsctl.client import trust_local_ca

    ca = tmp_path / "ca.pem"
    ca.write_text("a CA")
    (tmp_path / ".localdev").mkdir()
    (tmp_path / ".localdev" / "connection.json").write_text(json.dumps({"azureml": {"REQUESTS_CA_BUNDLE": str(ca)}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with trust_local_ca("https://app.example.com"):
        assert "REQUESTS_CA_BUNDLE" not in os.environ, "a remote app's CA is the system's"
    with trust_local_ca("http://127.0.0.1:7071"):
        assert os.environ["REQUESTS_CA_BUNDLE"] == str(ca)
    assert "REQUESTS_CA_BUNDLE" not in os.environ, "only while opsctl runs"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/mine.pem")
    with trust_local_ca("http://127.0.0.1:7071"):
        assert os.environ["REQUESTS_CA_BUNDLE"] == "/etc/ssl/mine.pem"


def test_a_reader_that_goes_away_ends_opsctl_quietly(api: FakeApi) -> None:
    """`opsctl ... --json | head`: the pipe closes under the CLI; no traceback, exit 1."""

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    api.answer("GET", "ops/lifecycles", {"items": []})
    code = cli.main(["--url", api.url, "lifecycles", "--json"], out=ClosedPipe(), credentials=api.credentials)
    assert code == 1


def test_from_a_folder_inside_the_checkout_opsctl_finds_the_local_stack(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from opsctl.client import default_url, function_key

    (tmp_path / ".localdev").mkdir()
    (tmp_path / ".localdev" / "connection.json").write_text(json.dumps({"host": "http://127.0.0.1:7171"}))
    (tmp_path / ".localdev" / "keys.json").write_text(json.dumps({"function": "the-local-key"}))
    (tmp_path / "samples" / "events").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "samples" / "events")
    monkeypatch.delenv("MLOPS_API_URL", raising=False)
    monkeypatch.delenv("MLOPS_FUNCTION_KEY", raising=False)
    monkeypatch.delenv("MLOPS_KEY_FILE", raising=False)
    monkeypatch.setenv("OPSCTL_CONFIG_DIR", str(tmp_path / "no-stack-remembered"))
    assert default_url() == "http://127.0.0.1:7171"
    assert function_key("http://127.0.0.1:7171", None, None) == "the-local-key"
    monkeypatch.chdir(tmp_path.parent)
    assert default_url() == "http://127.0.0.1:7071", "outside the checkout there is no local stack to find"


def test_a_listing_prints_the_token_of_the_next_page_and_all_follows_every_token(api: FakeApi) -> None:
    pages = {None: (["churn:1", "churn:2"], "t2"), "t2": (["churn:3"], "t3"), "t3": (["churn:4"], None)}

    def page(seen: Seen) -> dict[str, Any]:
        keys, following = pages[seen.query.get("next")]
        items = [{"model": key.split(":")[0], "version": key.split(":")[1], "stage": "failed", "rule": "churn",
                  "workspace": "dev", "history": []} for key in keys]
        return {"items": items, **({"next": following} if following else {})}

    api.answer("GET", "ops/lifecycles", page)
    code, first = run(api, "lifecycles", "--limit", "2")
    assert code == 0 and first.rstrip().endswith("more: --next t2 (or --all)")
    assert api.seen[-1].query == {"limit": "2"}

    code, second = run(api, "lifecycles", "--next", "t2")
    assert code == 0 and api.seen[-1].query == {"next": "t2"} and "more: --next t3" in second

    code, every = run(api, "--json", "lifecycles", "--all", "--stage", "failed")
    document = json.loads(every)
    assert [item["version"] for item in document["items"]] == ["1", "2", "3", "4"] and "next" not in document
    assert [seen.query.get("next") for seen in api.seen[-3:]] == [None, "t2", "t3"]
    assert all(seen.query["stage"] == "failed" for seen in api.seen[-3:])


def test_history_pages_like_the_other_listings(api: FakeApi) -> None:
    pages = {None: ([rollout_record(), rollout_record("rolled_back")], "h2"), "h2": ([rollout_record("failed")], None)}

    def page(seen: Seen) -> dict[str, Any]:
        items, following = pages[seen.query.get("next")]
        return {"items": items, **({"next": following} if following else {})}

    api.answer("GET", "ops/rollouts/prod/credit-risk/history", page)
    code, first = run(api, "history", "prod", "credit-risk", "--limit", "2")
    assert code == 0 and first.rstrip().endswith("more: --next h2 (or --all)")
    assert api.seen[-1].query == {"limit": "2"}

    code, every = run(api, "--json", "history", "prod", "credit-risk", "--all")
    document = json.loads(every)
    assert [item["state"] for item in document["items"]] == ["succeeded", "rolled_back", "failed"]
    assert "next" not in document and [seen.query.get("next") for seen in api.seen[-2:]] == [None, "h2"]
