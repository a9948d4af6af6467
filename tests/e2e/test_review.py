"""The review gate end to end, on the local stack: a version that passes its gates waits for a person.

People sign in to the local Entra ID stand-in and call with their own tokens. A version is approved
through the admin API by a holder of the approvers' role (refused without it, and to its own registrant
under four eyes, compared on the token's upn and Azure ML's systemData), or, where the rule allows it,
by a tag set on the version in Azure ML studio (found by the resync; the approver is whoever last changed
the version, recorded as by tag, role not verified). A rejected version never reaches the registry.
Every step tells ops.

What only time decides, the reminder and the expiry, is tested on a fake clock through the controller
and the resync (`tests/unit/test_review_controller.py`), not by waiting here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import requests

from devhost.azurite import Azurite
from devhost.localaml import register_model_version
from devhost.stack import Stack, local_stack
from devhost.waiting import wait_until
from localaml import samples
from shared.domain.ports import NotFound

pytestmark = pytest.mark.e2e

ROLE = "MLOps.Approver"
POLICY = f"""
rules:
  - name: credit-risk
    models: {{name: "credit-risk*"}}
    test: {{pipeline: model-test, inputs: {{test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}}}
    gates: [{{metric: accuracy, min: 0.8}}]
    review: {{approvers: {ROLE}, four_eyes: true, expires_after: 7d, by_tag: true}}
    promotion: {{path: ["registry:shared"]}}
    notify: {{default: [webhook]}}
"""
ALICE, BOB, CAROL = "alice@contoso.test", "bob@contoso.test", "carol@contoso.test"
# What App Service authentication would add for bob the approver: any caller can write it.
FORGED_BOB = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [
    {"typ": "name", "val": BOB}, {"typ": "roles", "val": ROLE}]}).encode()).decode()


def oid_of(stack: Stack, user: str) -> str:
    person = stack.aml.entra.entra.directory.user(user)
    assert person is not None
    return person.oid


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("review")
    (workdir / "policy.yaml").write_text(POLICY)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(workdir / "policy.yaml")}, azurite=azurite) as running:
        yield running


def register(stack: Stack, name: str, by: str) -> str:
    """`by` registers the next version of `name` in dev, as a data scientist does; its version."""
    version = register_model_version(stack.aml.client_as("dev", by), "dev", name, samples.good_model(seed=1)).version
    wait_until(lambda: stage(stack, name, version) == "awaiting_review", timeout=90)
    return version


def stage(stack: Stack, name: str, version: str) -> str | None:
    record = stack.state.get("lifecycle", f"{name}:{version}")
    return record["stage"] if record else None


def told(stack: Stack, kind: str, subject: str) -> list[dict]:
    return [n.body["data"] for n in stack.receiver.received
            if n.path == "/ops" and n.body["data"]["kind"] == kind and n.body["data"]["subject"] == subject]



def review(stack: Stack, name: str, version: str, decision: str, who: str) -> requests.Response:
    """`who` (a person of the stand-in) decides, signed in: their token is all the app learns them by."""
    return stack.admin("POST", f"ops/lifecycles/{name}/{version}/review", as_user=who,
                       json={"decision": decision, "reason": "checked the gate table"})


def in_registry(stack: Stack, name: str, version: str) -> bool:
    try:
        stack.platform.get_model("registry:shared", name, version)
    except NotFound:
        return False
    return True


def test_a_version_waits_for_review_and_is_approved_through_the_api_by_an_approver_other_than_its_registrant(
        stack: Stack) -> None:
    version = register(stack, "credit-risk", ALICE)
    [waiting] = told(stack, "model.awaiting_review", f"credit-risk:{version}")
    assert f"opsctl review approve credit-risk {version}" in waiting["summary"]
    assert f"{ALICE} may not approve it" in waiting["summary"]
    assert waiting["table"]["header"][0] == "metric"
    assert waiting["link"].startswith("https://"), "Teams shows it as an Action.OpenUrl button: the test job's evidence"
    assert stack.platform.get_model("dev", "credit-risk", version).tags["mlops.stage"] == "awaiting_review"

    for who in ("alice", "carol", "erin"):  # a reader, an operator, an admin: none of them an approver
        without_role = review(stack, "credit-risk", version, "approve", who)
        assert without_role.status_code == 403 and ROLE in without_role.json()["error"], who
    forged = stack.admin("POST", f"ops/lifecycles/credit-risk/{version}/review", as_user=None, headers={
        "x-ms-client-principal": FORGED_BOB, "x-ms-client-principal-name": BOB,
        "x-functions-key": stack.host.keys.function}, json={"decision": "approve", "reason": "forged"})
    assert forged.status_code == 401 and forged.headers["WWW-Authenticate"].startswith("Bearer")
    assert stage(stack, "credit-risk", version) == "awaiting_review" and not in_registry(stack, "credit-risk", version)

    approved = review(stack, "credit-risk", version, "approve", "bob")

    assert approved.status_code == 200, approved.text
    decision = approved.json()["review"]
    assert decision["by"] == BOB and decision["via"] == "api"
    # At once, unless a reconcile of the version was under way (a loaded CI machine): the decision is
    # recorded and that reconcile, or the next, carries it on.
    wait_until(lambda: stage(stack, "credit-risk", version) == "promoted", timeout=60)
    assert decision["by_oid"] == oid_of(stack, "bob") and approved.json()["registered_by"] == ALICE
    assert in_registry(stack, "credit-risk", version)
    audit = stack.admin("GET", "ops/audit", params={"subject": f"credit-risk:{version}", "action": "review"}).json()
    assert [e["by_oid"] for e in audit["items"]] == [oid_of(stack, "bob")]
    again = review(stack, "credit-risk", version, "approve", "bob")
    assert again.status_code == 409 and "not awaiting_review" in again.json()["error"]


def test_under_four_eyes_the_registrant_may_not_approve_even_holding_the_role(stack: Stack) -> None:
    version = register(stack, "credit-risk", BOB)

    own = review(stack, "credit-risk", version, "approve", "bob")

    assert own.status_code == 403 and "four eyes" in own.json()["error"] and BOB in own.json()["error"]
    assert stage(stack, "credit-risk", version) == "awaiting_review" and not in_registry(stack, "credit-risk", version)


def test_a_tag_set_in_studio_approves_once_the_resync_finds_it_but_not_the_registrant_s_own(stack: Stack) -> None:
    own, other = register(stack, "credit-risk", ALICE), register(stack, "credit-risk", ALICE)
    for version, who in ((own, ALICE), (other, CAROL)):
        client = stack.aml.client_as("dev", who)
        model = client.models.get("credit-risk", version=version)
        model.tags = {**(model.tags or {}), "mlops.review": "approved"}
        client.models.create_or_update(model)

    wait_until(lambda: stage(stack, "credit-risk", other) == "promoted", timeout=60)
    record = stack.state.get("lifecycle", f"credit-risk:{other}")
    assert record is not None and record["review"]["by"] == CAROL and record["review"]["via"] == "tag"
    wait_until(lambda: (stack.state.get("lifecycle", f"credit-risk:{own}") or {}).get("refused_approval_by") == ALICE,
               timeout=30)
    assert stage(stack, "credit-risk", own) == "awaiting_review" and not in_registry(stack, "credit-risk", own)


def test_a_rejected_version_never_reaches_the_registry(stack: Stack) -> None:
    version = register(stack, "credit-risk", ALICE)

    rejected = review(stack, "credit-risk", version, "reject", "bob")

    assert rejected.status_code == 200 and rejected.json()["stage"] == "rejected"
    assert not in_registry(stack, "credit-risk", version)
    assert stack.platform.get_model("dev", "credit-risk", version).tags["mlops.stage"] == "rejected"
    [notification] = told(stack, "model.rejected", f"credit-risk:{version}")
    assert BOB in notification["summary"]
