"""opsctl against a real HTTP server on loopback that answers like the admin API: what it
sends (method, path, query, body, key) and what it prints (tables, `--json`, `--watch`)."""

from __future__ import annotations

import io
import json
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsctl import cli
from shared.ops.routes import ROUTES

EVENT_ID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
CORRELATION = "0123456789abcdef0123456789abcdef"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    key: str | None
    body: Any


@dataclass
class FakeApi:
    """Answers `(method, path)` with the document set for it (404 in the API's shape otherwise)."""

    url: str = ""
    # (method, path) -> (status, document, or a function of the request that makes it)
    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)  # raised while serving, other than a client hanging up

    def answer(self, method: str, path: str, document: Any, status: int = 200) -> None:
        self.answers[(method, "/api/" + path)] = (status, document)

    def paths(self) -> list[tuple[str, str]]:
        return [(seen.method, seen.path) for seen in self.seen]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

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
                        self.headers.get("x-functions-key"), body)
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
    yield fake
    server.shutdown()
    server.server_close()
    assert not fake.errors, f"the fake API failed while serving: {fake.errors!r}"


def run(api: FakeApi, *argv: str, key: str = "function-key") -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--url", api.url, f"--key={key}", *argv], out=out)
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


def test_every_admin_route_has_a_command_that_calls_it(api: FakeApi, tmp_path: Path) -> None:
    routes = {(route.method, route.path) for route in ROUTES}
    missing = routes - COMMANDS.keys()
    assert not missing, f"routes without an opsctl command (add one, and a line here): {missing}"
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: []\n")
    for route in sorted(routes):
        argv, path, document = COMMANDS[route]
        api.seen.clear()
        api.answer(route[0], path, document)
        code, out = run(api, *[str(policy) if arg == "POLICY_FILE" else arg for arg in argv])
        assert code == 0, (argv, out)
        assert (route[0], "/api/" + path) in api.paths(), (argv, api.paths())
        assert out.strip(), argv
        assert all(seen.key == "function-key" for seen in api.seen)


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


def test_replay_keeps_the_function_key_and_sends_the_record_key(api: FakeApi) -> None:
    """`replay KIND KEY` once wrote KEY over `--key`, so every replay answered 401."""
    api.answer("POST", "ops/events/replay", {"kind": "deadletter", "key": "abc", "outcome": "requeued"})
    code, out = run(api, "replay", "deadletter", "abc", key="the-function-key")
    assert code == 0 and out.strip() == "replayed deadletter abc: requeued"
    assert (api.seen[0].key, api.seen[0].body) == ("the-function-key", {"kind": "deadletter", "key": "abc"})


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
    assert api.seen[0].body == {"input": "in/batch.csv", "id_columns": ["id"], "output": {"container": "out"},
                                "model": {"location": "registry:shared", "name": "credit-risk", "version": "2"}}
    code, out = run(api, "score", "status", JOB_ID, "--watch", "0.01", "--count", "2")
    assert code == 0 and out.count("completed") == 2
