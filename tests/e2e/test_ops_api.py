"""The admin API over real HTTP on the local stack: keys, validation, and every rollout
action on real rollouts of a real endpoint with client traffic flowing.

One stack per module; each rollout test starts its own rollout of a new model version
and leaves it finished (an autouse fixture aborts whatever a failed test left active).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import WaitTimeout, wait_until
from localaml import samples
from opsctl import cli as opsctl
from tests.e2e import people
from tests.e2e.conftest import HostRuns

POLICY = """
rules:
  - name: credit-risk
    models: {name: "credit-risk*"}
    source_workspace: dev
    test: {pipeline: model-test, inputs: {test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}
    gates: [{metric: accuracy, min: 0.8}]
    promotion: {path: ["registry:shared"]}
    rollout:
      workspace: prod
      endpoint: credit-risk
      steps: [50, 100]
      bake_seconds: 1
      gates: {max_error_rate: 0.2, min_requests: 3}
      inconclusive_limit: 60
      retire_previous_after_seconds: 0
    drift:
      monitor: "credit-risk-*"
      threshold: 0.3
      pipeline: retrain
      inputs: {training_data: "azureml://datastores/workspaceblobstore/paths/training-data/"}
    notify: {default: [log]}
"""
PLAN = {"workspace": "prod", "endpoint": "credit-risk", "steps": [50, 100], "bake_seconds": 1,
        "gates": {"max_error_rate": 0.2, "min_requests": 3}, "inconclusive_limit": 60,
        "retire_previous_after_seconds": 0}
ROLLOUT = "ops/rollouts/prod/credit-risk"
FORCED = {"targets": ["registry:shared"], "force": True, "reason": "scorer has no tests"}


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("ops-api")
    (workdir / "policy.yaml").write_text(POLICY)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(workdir / "policy.yaml")}, azurite=azurite) as running, \
            TrafficGenerator(running.aml, "prod", "credit-risk", per_second=20):
        yield running


@pytest.fixture(scope="module")
def live(stack: Stack) -> dict[str, Any]:
    """credit-risk v1 through its whole lifecycle: tested, promoted, and at 100% of the empty endpoint."""
    stack.aml.register_model("dev", "credit-risk", samples.good_model(1), {})
    reach(stack, "succeeded", timeout=90)
    return settled(stack)


@pytest.fixture(scope="module")
def onnx() -> bytes:
    return samples.good_model(3)


@pytest.fixture(autouse=True)
def no_active_rollout_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        found = stack.admin("GET", ROLLOUT)
        if found.ok and found.json()["state"] in ("progressing", "paused", "awaiting_approval"):
            stack.admin("POST", f"{ROLLOUT}/abort", json={"reason": "test cleanup"})
        if found.ok:
            settled(stack)


def start(stack: Stack, onnx: bytes, **plan: Any) -> dict[str, Any]:
    """Register a new `scorer` version (no rule tests it), promote it by force, and roll the registry's copy out by
    request."""
    model = stack.aml.register_model("dev", "scorer", onnx, {})
    promoted = stack.admin("POST", f"ops/models/dev/scorer/{model.version}/promote", json=FORCED)
    assert promoted.status_code == 200, promoted.text
    response = stack.admin("POST", "ops/rollouts", json={
        "model": {"location": "registry:shared", "name": "scorer", "version": model.version}, "rule": "credit-risk",
        "plan": {**PLAN, **plan},
    })
    assert response.status_code == 202, response.text
    return response.json()


def rollout(stack: Stack) -> dict[str, Any]:
    response = stack.admin("GET", ROLLOUT)
    assert response.status_code == 200, response.text
    return response.json()


def _state(stack: Stack, *states: str) -> dict[str, Any] | None:
    response = stack.admin("GET", ROLLOUT)
    record = response.json() if response.ok else None
    return record if record and record["state"] in states else None


def settled(stack: Stack) -> dict[str, Any]:
    """The rollout once it is over: rolled back, or succeeded with the previous deployments retired
    (so that the next test's rollout starts from a split of existing deployments)."""
    return wait_until(lambda: (r := _state(stack, "succeeded", "rolled_back")) and (
        r["state"] == "rolled_back" or r["retired"]) and r, timeout=30)


def reach(stack: Stack, *states: str, timeout: float = 30) -> dict[str, Any]:
    """The rollout once it is in one of `states`; on timeout, fail with its history."""
    try:
        return wait_until(lambda: _state(stack, *states), timeout=timeout)
    except WaitTimeout:
        record = rollout(stack)
        history = "\n".join(f"  {e['time'][11:19]} {e['action']}: {e['reason']}" for e in record["history"])
        raise AssertionError(f"rollout is {record['state']}, not {states}; baseline {record['baseline']}, "
                             f"endpoint {record.get('live')}; history:\n{history}") from None


def at_step(stack: Stack, percent: int) -> dict[str, Any] | None:
    """The rollout once `percent` is applied and live on the endpoint."""
    record = rollout(stack)
    live = record.get("live") or {}
    applied = live.get("provisioning_state") == "Succeeded" and live["traffic"].get(record["deployment"]) == percent
    return record if record["phase"] == "step" and applied else None


def serving(record: dict[str, Any]) -> dict[str, int]:
    """The endpoint's live split without the deployments at 0%."""
    return {name: percent for name, percent in record["live"]["traffic"].items() if percent}


def act(stack: Stack, action: str, expect: int = 200) -> dict[str, Any]:
    response = stack.admin("POST", f"{ROLLOUT}/{action}", json={"reason": f"e2e {action}"})
    assert response.status_code == expect, response.text
    return response.json()


# Keys, validation, lookups ----------------------------------------------------------------


def test_health_takes_the_function_key_and_a_person_s_route_a_token_never_the_key(stack: Stack) -> None:
    url = f"{stack.host.url}/api/ops/health"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, params={"code": stack.host.keys.function}, timeout=10).status_code == 200
    people = f"{stack.host.url}/api/ops/lifecycles"
    for refused in (requests.get(people, timeout=10),
                    requests.get(people, headers={"x-functions-key": stack.host.keys.function}, timeout=10),
                    requests.get(people, params={"code": stack.host.keys.function}, timeout=10)):
        assert refused.status_code == 401 and "sign in" in refused.json()["error"]
    assert stack.admin("GET", "ops/lifecycles", as_user="dave").status_code == 200


def test_health_reports_platform_policy_and_storage(stack: Stack) -> None:
    response = stack.health()
    assert response.status_code == 200
    health = response.json()
    assert health["ok"] and health["platform"] == f"azureml at {stack.aml.url}"
    assert health["policy"] == {"ok": True, "detail": f"1 rules from {stack.host.settings['MLOPS_POLICY_PATH']}"}
    assert response.headers["x-correlation-id"]


def test_bad_json_and_bad_fields_get_400_naming_the_field(stack: Stack) -> None:
    traffic = "ops/endpoints/prod/credit-risk/traffic"
    bad_json = stack.admin("POST", traffic, data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["field"] == "body"
    too_much = stack.admin("POST", traffic, json={"traffic": {"credit-risk-v1": 120}})
    assert too_much.status_code == 400 and too_much.json()["field"] == "traffic.credit-risk-v1"
    assert "less than or equal to 100" in too_much.json()["error"]
    typo = stack.admin("POST", "ops/retrain", json={"rule": "credit-risk", "requestid": "r1"})
    assert typo.status_code == 400 and typo.json()["field"] == "request_id"
    assert "requestid: Extra inputs are not permitted" in typo.json()["error"]
    bad_name = stack.admin("GET", "ops/rollouts/Prod/credit-risk")
    assert bad_name.status_code == 400 and bad_name.json()["field"] == "workspace"


@pytest.mark.parametrize("seconds", ["1e18", "1e999"])
def test_a_plan_with_seconds_beyond_their_bound_gets_400_naming_the_field(stack: Stack, seconds: str) -> None:
    """1e18 seconds was accepted, then overflowed `timedelta` in every tick; JSON 1e999 parses as infinity."""
    body = json.dumps({"model": {"location": "registry:shared", "name": "scorer", "version": "1"},
                       "rule": "credit-risk", "plan": {**PLAN, "retire_previous_after_seconds": 0}})
    raw = body.replace('"retire_previous_after_seconds": 0', f'"retire_previous_after_seconds": {seconds}')
    response = stack.admin("POST", "ops/rollouts", data=raw.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "plan.retire_previous_after_seconds"


def test_unknown_endpoints_models_and_rules_get_404(stack: Stack) -> None:
    for method, path, body in (
        ("GET", "ops/rollouts/prod/nowhere", None),
        ("POST", "ops/endpoints/prod/nowhere/traffic", {"traffic": {}}),
        ("POST", "ops/models/dev/no-such-model/1/promote", {"targets": ["registry:shared"]}),
        ("POST", "ops/rollouts/prod/nowhere/pause", None),
        ("POST", "ops/retrain", {"rule": "no-such-rule", "request_id": "r1"}),
        ("GET", "ops/lifecycles/no-such-model/1", None),
    ):
        response = stack.admin(method, path, json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]


def test_a_policy_draft_is_validated(stack: Stack) -> None:
    good = stack.admin("POST", "ops/policy/validate", data=POLICY.encode())
    assert good.status_code == 200 and good.json() == {"valid": True, "rules": ["credit-risk"]}
    bad = stack.admin("POST", "ops/policy/validate", data=POLICY.replace("min: 0.8", "min: high").encode())
    assert bad.status_code == 400 and "rules[0] (credit-risk).gates[0].min" in bad.json()["error"]


def test_a_version_is_promoted_by_hand_idempotently_and_only_by_force_when_untested(stack: Stack, onnx: bytes) -> None:
    model = stack.aml.register_model("dev", "scorer", onnx, {})
    path = f"ops/models/dev/scorer/{model.version}/promote"
    untested = stack.admin("POST", path, json={"targets": ["registry:shared"]})
    assert untested.status_code == 409 and untested.json()["field"] == "force" and "never tested" in untested.text
    no_reason = stack.admin("POST", path, json={"targets": ["registry:shared"], "force": True})
    assert no_reason.status_code == 400 and no_reason.json()["field"] == "reason"
    first = stack.admin("POST", path, json=FORCED)
    assert first.status_code == 200, first.text
    assert first.json()["source"] == "dev" and list(first.json()["promoted"]) == ["registry:shared"]
    assert stack.admin("POST", path, json=FORCED).json() == first.json()
    forced = [e for e in stack.state.read_audit() if e.action == "ops.promote-forced"]
    assert len(forced) == 2 and "scorer has no tests" in forced[0].reason
    told = [n.body["data"] for n in stack.receiver.received if n.path == "/ops"
            and n.body["data"]["kind"] == "model.promoted" and "by force" in n.body["data"]["title"]]
    assert told and told[0]["severity"] == "warning"
    # Azure ML shares to registries only; a workspace target is refused naming the field.
    to_prod = stack.admin("POST", path, json={"targets": ["prod"]})
    assert to_prod.status_code == 400 and to_prod.json()["field"] == "targets[0]"
    # ... and a prod deployment cannot use the dev workspace's version: Azure resolves it in prod or a registry.
    from_dev = stack.admin("POST", "ops/rollouts", json={
        "model": {"location": "dev", "name": "scorer", "version": model.version}, "rule": "credit-risk", "plan": PLAN})
    assert from_dev.status_code == 400 and from_dev.json()["field"] == "model.location"
    assert stack.platform.get_model("registry:shared", "scorer", model.version).name == "scorer"
    unmatched = stack.admin("POST", path)
    assert unmatched.status_code == 400 and unmatched.json()["field"] == "targets"


# Rollouts ---------------------------------------------------------------------------------


def test_the_first_version_goes_live_and_approving_a_finished_rollout_conflicts(stack: Stack, live: dict) -> None:
    assert live["deployment"] == "credit-risk-v1" and live["live"]["traffic"] == {"credit-risk-v1": 100}
    lifecycle = stack.admin("GET", "ops/lifecycles/credit-risk/1").json()
    assert lifecycle["stage"] == "live"
    conflict = stack.admin("POST", f"{ROLLOUT}/approve")
    assert conflict.status_code == 409
    assert "cannot approve a rollout that is succeeded" in conflict.json()["error"]


def test_pause_holds_a_rollout_and_resume_finishes_it(stack: Stack, live: dict, onnx: bytes) -> None:
    start(stack, onnx, bake_seconds=2)
    wait_until(lambda: at_step(stack, 50), timeout=30)
    paused = act(stack, "pause")
    assert paused["state"] == "paused"
    runs = HostRuns(stack.host)
    wait_until(lambda: runs.runs_of("rollout_tick") >= 3, timeout=30, what="three rollout ticks after the pause")
    held = rollout(stack)
    assert held["state"] == "paused" and held["step"] == paused["step"]
    assert held["live"]["traffic"][held["deployment"]] == 50
    assert act(stack, "resume")["state"] == "progressing"
    done = reach(stack, "succeeded", "rolled_back", timeout=40)
    assert done["state"] == "succeeded" and serving(done) == {done["deployment"]: 100}
    actions = [entry["action"] for entry in done["history"]]
    assert actions.index("pause") < actions.index("resume") < actions.index("succeeded")


def test_a_manual_gate_waits_for_approval(stack: Stack, live: dict, onnx: bytes) -> None:
    start(stack, onnx, manual_gates=[100])
    waiting = reach(stack, "awaiting_approval")
    assert waiting["live"]["traffic"][waiting["deployment"]] == 50
    act(stack, "resume", expect=409)
    act(stack, "approve")
    done = reach(stack, "succeeded")
    assert serving(done) == {done["deployment"]: 100}
    erin = stack.aml.entra.entra.directory.user("erin")
    assert erin is not None
    assert any(entry["action"] == "approve" and entry["actor"] == f"api:{erin.display_name}"
               for entry in done["history"]), "the history names the person who approved, from their token"


def test_abort_restores_the_traffic_from_before_the_rollout(stack: Stack, live: dict, onnx: bytes) -> None:
    before = rollout(stack)["live"]["traffic"]
    start(stack, onnx, bake_seconds=60)
    wait_until(lambda: at_step(stack, 50), timeout=30)
    assert act(stack, "abort")["state"] == "rolled_back"
    restored = wait_until(lambda: (r := rollout(stack))["live"]["provisioning_state"] == "Succeeded" and r)
    assert restored["live"]["traffic"] == before


def test_undo_takes_a_finished_rollout_back(stack: Stack, live: dict, onnx: bytes) -> None:
    before = rollout(stack)["live"]["traffic"]
    start(stack, onnx, steps=[100], retire_previous_after_seconds=600)
    reach(stack, "succeeded")
    assert act(stack, "undo")["state"] == "rolled_back"
    restored = wait_until(lambda: (r := rollout(stack))["live"]["provisioning_state"] == "Succeeded" and r)
    assert restored["live"]["traffic"] == before
    act(stack, "undo", expect=409)


def test_an_admin_traffic_change_during_a_rollout_pauses_it_and_stays(stack: Stack, live: dict, onnx: bytes) -> None:
    (current,) = serving(rollout(stack))
    started = start(stack, onnx, bake_seconds=60)
    wait_until(lambda: at_step(stack, 50), timeout=30)
    wanted = {current: 80, started["deployment"]: 20}
    response = stack.admin("POST", "ops/endpoints/prod/credit-risk/traffic", json={"traffic": wanted})
    assert response.status_code == 202, response.text
    assert response.json()["rollout_state"] == "paused"
    runs = HostRuns(stack.host)
    # Three rollout ticks and a resync would have moved the traffic back if they fought the change.
    wait_until(lambda: runs.runs_of("rollout_tick") >= 3 and runs.runs_of("resync") >= 1, timeout=30,
               what="three rollout ticks and a resync after the traffic change")
    held = rollout(stack)
    assert held["state"] == "paused" and serving(held) == wanted
    assert "manual traffic change" in held["history"][-1]["reason"]
    audit = stack.admin("GET", "ops/audit", params={"action": "ops.traffic"}).json()["items"]
    assert audit[-1]["subject"] == "prod/credit-risk" and response.headers["x-correlation-id"] == audit[-1][
        "correlation_id"]


def test_mirror_traffic_is_checked_against_the_endpoint(stack: Stack, live: dict) -> None:
    record = rollout(stack)
    (current,) = serving(record)
    # The endpoint as it is now: the record's `live` is what the engine last observed, which need not list the
    # deployment the previous test's rollback kept for diagnosis yet.
    deployments = [deployment.name for deployment in stack.platform.get_endpoint("prod", "credit-risk").deployments]
    idle = next(name for name in deployments if name != current)
    both = stack.admin("POST", "ops/endpoints/prod/credit-risk/traffic",
                       json={"traffic": {current: 100}, "mirror_traffic": {current: 10}})
    assert both.status_code == 400 and both.json()["field"] == f"mirror_traffic.{current}"
    too_much = stack.admin("POST", "ops/endpoints/prod/credit-risk/traffic",
                           json={"traffic": {current: 100}, "mirror_traffic": {idle: 60}})
    assert too_much.status_code == 400 and too_much.json()["field"] == "mirror_traffic"
    assert "at most 50%" in too_much.json()["error"]


def test_the_cli_prints_the_rollout_table(stack: Stack, live: dict, capsys: pytest.CaptureFixture[str]) -> None:
    def cli(user: str, *argv: str) -> int:
        return people.opsctl(stack.aml.entra, stack.host.url, user, argv)

    assert cli("dave", "rollouts") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["endpoint", "model", "version", "state", "step", "traffic", "last", "action", "started"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[0] == "prod/credit-risk"
    assert cli("dave", "rollout", "prod", "credit-risk") == 0
    detail = capsys.readouterr().out
    assert detail.split()[0] == "rollout" and detail.split()[1].startswith("credit-risk/")
    assert "time" in detail and "analysis" in detail
    assert cli("dave", "approve", "prod", "credit-risk") == 1
    assert "403: this needs the app role MLOps.Operator" in capsys.readouterr().err
    assert cli("carol", "approve", "prod", "credit-risk") == 1
    assert "409: cannot approve" in capsys.readouterr().err
    assert opsctl.main(["--url", stack.host.url, "--key", "wrong", "health"]) == 1
    assert "401" in capsys.readouterr().err


# Replay -----------------------------------------------------------------------------------


def test_a_dead_lettered_work_item_is_replayed_onto_the_queue(stack: Stack) -> None:
    queue = QueueClient.from_connection_string(
        stack.settings.storage_connection or "", "aml-work", message_encode_policy=BinaryBase64EncodePolicy()
    )
    item = {"key": "replay-probe", "event": {"id": "evt-replay", "eventType": "not-an-aml-event"}}
    queue.send_message(json.dumps(item).encode())
    wait_until(lambda: stack.state.get("deadletter", "replay-probe"), timeout=60)

    response = stack.admin("POST", "ops/events/replay", json={"kind": "deadletter", "key": "replay-probe"})

    assert response.status_code == 200, response.text
    assert response.json() == {"kind": "deadletter", "key": "replay-probe", "outcome": "requeued"}
    replays = [e for e in stack.state.read_audit() if e.action == "ops.replay"]
    assert [e.outcome for e in replays] == ["requeued"]
    # The item runs again from its first attempt (and, still broken, ends dead-lettered again).
    wait_until(lambda: [e for e in stack.state.read_audit() if e.correlation_id == "evt-replay"
                      and e.action == "react" and e.time > replays[0].time], timeout=30)
    missing = stack.admin("POST", "ops/events/replay", json={"kind": "rejected", "key": "no-such-event"})
    assert missing.status_code == 404
