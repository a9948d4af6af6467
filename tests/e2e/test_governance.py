"""Governing rollouts end to end, on the local stack: what admins ask for through the admin API, checked there
and on the platform (the endpoint's traffic and deployments, the model's tags, read with the SDK).

`promote` goes one step and the next step is still analysed; `promote` with `full` goes to 100 % without
analysis, only with a reason, and is audited. A version whose rollout ended is not started again by accident
(409 naming how it ended) but only with `restart`. A version another replaces is superseded, then retired once its
deployment is deleted. A rolled-back rollout stays in the endpoint's history after the next one.

The rollouts by request run a `scorer` model (no rule tests it; it is promoted by force), each test on an endpoint
of its own with a first version already serving, so that the tests do not depend on each other's rollouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import wait_until
from localaml import samples

pytestmark = pytest.mark.e2e

POLICY = """
rules:
  - name: credit-risk
    models: {name: "credit-risk*"}
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
      retire_previous_after_seconds: 2
    notify: {default: [log]}
"""
PLAN: dict[str, Any] = {"workspace": "prod", "steps": [50, 100], "bake_seconds": 1,
                        "gates": {"max_error_rate": 0.05, "min_requests": 5}, "failure_limit": 1,
                        "inconclusive_limit": 60, "retire_previous_after_seconds": 0}
# No client traffic reaches 1,000,000 requests: every analysis is inconclusive and the rollout holds its step.
HOLDS: dict[str, Any] = {"gates": {"max_error_rate": 0.2, "min_requests": 1_000_000}, "inconclusive_limit": 1000}
FORCED = {"targets": ["registry:shared"], "force": True, "reason": "scorer is checked by its own team"}


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("governance")
    (workdir / "policy.yaml").write_text(POLICY)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(workdir / "policy.yaml")}, azurite=azurite) as running:
        yield running


def endpoint_serving_a_first_version(stack: Stack, endpoint: str) -> str:
    """A new prod endpoint (created with the SDK, as a platform team does) with a `scorer` version at 100 %
    (the first rollout on an empty endpoint goes there at once); the deployment's name."""
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    prod = stack.aml.client("prod")
    prod.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=endpoint, auth_mode="key"))
    wait_until(lambda: prod.online_endpoints.get(endpoint).provisioning_state == "Succeeded", timeout=60)
    first = str(start(stack, endpoint, scorer(stack), steps=[100])["deployment"])
    reach(stack, endpoint, "succeeded")
    wait_until(lambda: settled(stack, endpoint) == {first: 100}, timeout=30, what=f"{first} at 100 % of {endpoint}")
    return first


def scorer(stack: Stack) -> str:
    """A new `scorer` version, promoted to the registry by force; its version."""
    model = stack.aml.register_model("dev", "scorer", samples.good_model(3), {})
    promoted = stack.admin("POST", f"ops/models/dev/scorer/{model.version}/promote", json=FORCED)
    assert promoted.status_code == 200, promoted.text
    return str(model.version)


def request_rollout(stack: Stack, endpoint: str, version: str, restart: bool = False,
                    **plan: Any) -> requests.Response:
    return stack.admin("POST", "ops/rollouts", json={
        "model": {"location": "registry:shared", "name": "scorer", "version": version}, "rule": "credit-risk",
        "plan": {**PLAN, "endpoint": endpoint, **plan}, "restart": restart,
    })


def start(stack: Stack, endpoint: str, version: str, **plan: Any) -> dict[str, Any]:
    response = request_rollout(stack, endpoint, version, **plan)
    assert response.status_code == 202, response.text
    return dict(response.json())


def rollout(stack: Stack, endpoint: str) -> dict[str, Any]:
    response = stack.admin("GET", f"ops/rollouts/prod/{endpoint}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def state_of(stack: Stack, endpoint: str) -> str:
    return str(rollout(stack, endpoint)["state"])


def reach(stack: Stack, endpoint: str, state: str) -> dict[str, Any]:
    """The endpoint's rollout once it is in `state`."""
    return reach_when(stack, endpoint, lambda record: record["state"] == state, f"the rollout to be {state}")


def reach_when(stack: Stack, endpoint: str, test: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The endpoint's rollout once `test` holds for it."""
    found: dict[str, Any] = {}

    def arrived() -> bool:
        found.clear()
        found.update(rollout(stack, endpoint))
        return test(found)

    wait_until(arrived, timeout=60, what=f"{what} on {endpoint}")
    return found


def action(stack: Stack, endpoint: str, name: str, **body: Any) -> requests.Response:
    """The admin's action, sent again while the API answers 409 "try again", as a person would: a rollout tick
    holds the endpoint's lease while it analyses, longer than the action waits for it on a loaded machine
    (a fresh-clone run got the 409)."""
    def answered() -> list[requests.Response]:  # a list: a Response of 4xx is falsy
        response = stack.admin("POST", f"ops/rollouts/prod/{endpoint}/{name}", json=body)
        busy = response.status_code == 409 and "try again" in response.text
        return [] if busy else [response]

    return wait_until(answered, timeout=60, interval=1, what=f"{name} on {endpoint} not to find it busy")[0]


def history(stack: Stack, endpoint: str) -> list[dict[str, Any]]:
    response = stack.admin("GET", f"ops/rollouts/prod/{endpoint}/history")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def serving(stack: Stack, endpoint: str) -> dict[str, int]:
    """The endpoint's live split as Azure ML shows it (deployments at 0 % left out)."""
    traffic = stack.aml.client("prod").online_endpoints.get(endpoint).traffic or {}
    return {name: int(percent) for name, percent in traffic.items() if int(percent)}


def settled(stack: Stack, endpoint: str) -> dict[str, int] | None:
    """The endpoint's live split once no operation is in progress on it (Azure ML refuses changes until then)."""
    found = stack.aml.client("prod").online_endpoints.get(endpoint)
    if found.provisioning_state != "Succeeded":
        return None
    return {name: int(percent) for name, percent in (found.traffic or {}).items() if int(percent)}


def deployments(stack: Stack, endpoint: str) -> set[str]:
    return {deployment.name for deployment in stack.aml.client("prod").online_deployments.list(endpoint)}


def actions_after(record: dict[str, Any], index: int) -> list[str]:
    return [entry["action"] for entry in record["history"][index + 1:]]


def last_index(record: dict[str, Any], name: str) -> int:
    return max(i for i, entry in enumerate(record["history"]) if entry["action"] == name)


def audited(stack: Stack, name: str, subject: str) -> list[dict[str, Any]]:
    response = stack.admin("GET", "ops/audit", params={"action": name, "subject": subject})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_promote_goes_one_step_still_analysed_and_promote_full_goes_to_100_without_analysis_with_a_reason(
        stack: Stack) -> None:
    endpoint = "gov-promote"
    first = endpoint_serving_a_first_version(stack, endpoint)
    started = start(stack, endpoint, scorer(stack), steps=[25, 50, 100], **HOLDS)
    canary = started["deployment"]
    # The 25 % step holds: its analyses are inconclusive, so only a promote moves it on.
    reach_when(stack, endpoint, lambda r: r["step"] == 0 and "analysis:inconclusive" in actions_after(
        r, last_index(r, "step")), "an analysis of the 25 % step")
    assert serving(stack, endpoint) == {first: 75, canary: 25}

    promoted = action(stack, endpoint, "promote", reason="the canary looks fine in the dashboards")

    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["step"] == 1 and promoted.json()["state"] == "progressing"
    wait_until(lambda: serving(stack, endpoint) == {first: 50, canary: 50}, timeout=30, what="50 % on the endpoint")
    analysed = reach_when(stack, endpoint, lambda r: any(
        name.startswith("analysis:") for name in actions_after(r, last_index(r, "promote"))),
        "an analysis of the 50 % step after the promote")
    assert analysed["step"] == 1 and analysed["state"] == "progressing", "one step only, and still analysed"
    assert serving(stack, endpoint) == {first: 50, canary: 50}

    no_reason = action(stack, endpoint, "promote", full=True)
    assert no_reason.status_code == 400 and no_reason.json()["field"] == "reason", no_reason.text
    assert rollout(stack, endpoint)["step"] == 1

    full = action(stack, endpoint, "promote", full=True, reason="hotfix: verified offline by the risk team")

    assert full.status_code == 200, full.text
    done = reach(stack, endpoint, "succeeded")
    after = actions_after(done, last_index(done, "promote-full"))
    assert after == ["succeeded"], f"no analysis after promote full: {after}"
    assert done["history"][-1]["reason"] == "promoted without analysis"
    assert serving(stack, endpoint) == {canary: 100}
    [entry] = audited(stack, "ops.rollout.promote-full", done["id"])
    assert "hotfix: verified offline by the risk team" in entry["reason"]
    assert len(audited(stack, "ops.rollout.promote", done["id"])) == 1


def test_an_ended_rollout_is_started_again_only_with_restart_and_then_with_the_new_plan(stack: Stack) -> None:
    endpoint = "gov-restart"
    first = endpoint_serving_a_first_version(stack, endpoint)
    version = scorer(stack)
    start(stack, endpoint, version, **HOLDS)
    reach_when(stack, endpoint, lambda r: r["step"] == 0, "the first step")
    aborted = action(stack, endpoint, "abort", reason="wrong feature set")
    assert aborted.status_code == 200, aborted.text
    reach(stack, endpoint, "rolled_back")  # at once, or at the next tick when the endpoint was busy

    again = request_rollout(stack, endpoint, version, steps=[100])

    assert again.status_code == 409, again.text
    assert "has ended rolled_back" in again.json()["error"] and "restart" in again.json()["error"]
    assert state_of(stack, endpoint) == "rolled_back"
    wait_until(lambda: settled(stack, endpoint) == {first: 100}, timeout=30, what="the traffic from before")

    restarted = request_rollout(stack, endpoint, version, restart=True, steps=[20, 100], bake_seconds=2, **HOLDS)

    assert restarted.status_code == 202, restarted.text
    record = restarted.json()
    assert record["state"] == "progressing" and record["plan"]["steps"] == [20, 100]
    assert record["plan"]["bake_seconds"] == 2
    assert [entry["action"] for entry in record["history"]] == ["start"], "a new rollout, not the ended one"
    wait_until(lambda: serving(stack, endpoint) == {first: 80, record["deployment"]: 20}, timeout=30,
               what="the new plan's first step (20 %) on the endpoint")
    assert audited(stack, "ops.rollout.start", record["id"])[-1]["reason"].startswith(f"scorer v{version} on "
                                                                                        f"{endpoint} (restarted)")
    finished = action(stack, endpoint, "promote", full=True, reason="re-checked by hand")
    assert finished.status_code == 200, finished.text
    reach(stack, endpoint, "succeeded")
    ended = request_rollout(stack, endpoint, version)
    assert ended.status_code == 409 and "has ended succeeded" in ended.json()["error"], ended.text
    # Both runs of the version stay in the endpoint's history, newest first.
    runs = [(item["deployment"], item["state"]) for item in history(stack, endpoint)]
    assert runs == [(record["deployment"], "succeeded"), (record["deployment"], "rolled_back"), (first, "succeeded")]


def test_a_version_another_replaces_is_superseded_then_retired_once_its_deployment_is_deleted(stack: Stack) -> None:
    def stage(version: str) -> str:
        response = stack.admin("GET", f"ops/lifecycles/credit-risk/{version}")
        return str(response.json()["stage"]) if response.status_code == 200 else "unknown"

    stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=1), {})
    wait_until(lambda: stage("1") == "live", timeout=90, what="v1 live")
    assert "credit-risk-v1" in deployments(stack, "credit-risk")

    with TrafficGenerator(stack.aml, "prod", "credit-risk", per_second=20):
        stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=3), {})
        wait_until(lambda: stage("2") == "live", timeout=120, what="v2 live")
    wait_until(lambda: stage("1") == "retired", timeout=60, what="v1 retired")

    v1 = stack.admin("GET", "ops/lifecycles/credit-risk/1").json()
    stages = [entry["stage"] for entry in v1["history"]]
    assert stages[-3:] == ["live", "superseded", "retired"], stages
    assert "deployment credit-risk-v1 deleted" in v1["history"][-1]["reason"]
    assert deployments(stack, "credit-risk") == {"credit-risk-v2"}
    assert serving(stack, "credit-risk") == {"credit-risk-v2": 100}
    assert stack.aml.client("dev").models.get("credit-risk", version="1").tags["mlops.stage"] == "retired"
    assert stack.aml.client("dev").models.get("credit-risk", version="2").tags["mlops.stage"] == "live"
    registry = stack.aml.client("registry:shared")  # the copies that served tell the same stages
    assert registry.models.get("credit-risk", version="1").tags["mlops.stage"] == "retired"
    assert registry.models.get("credit-risk", version="2").tags["mlops.stage"] == "live"


def test_a_rolled_back_rollout_stays_in_the_history_after_the_next_one_succeeds(stack: Stack) -> None:
    endpoint = "gov-history"
    first = endpoint_serving_a_first_version(stack, endpoint)
    with TrafficGenerator(stack.aml, "prod", endpoint, per_second=20):
        failing = start(stack, endpoint, scorer(stack))
        stack.aml.set_deployment_fault("prod", endpoint, failing["deployment"], error_rate=1.0)
        reach(stack, endpoint, "rolled_back")
        wait_until(lambda: settled(stack, endpoint) == {first: 100}, timeout=30, what="the traffic from before")
        fixed = start(stack, endpoint, scorer(stack))
        reach(stack, endpoint, "succeeded")

    items = history(stack, endpoint)

    assert [(item["deployment"], item["state"]) for item in items] == [
        (fixed["deployment"], "succeeded"), (failing["deployment"], "rolled_back"), (first, "succeeded")]
    started = [datetime.fromisoformat(item["started"]) for item in items]
    assert started == sorted(started, reverse=True)
    rolled_back = items[1]
    failed = [entry for entry in rolled_back["history"] if entry["action"] == "analysis:fail"]
    assert failed and failed[0]["metrics"]["error_rate"] > 0.05
    assert "error" in rolled_back["rollback_reason"]
    assert rolled_back["history"][-1]["action"] == "rolled_back"
    assert serving(stack, endpoint) == {fixed["deployment"]: 100}
