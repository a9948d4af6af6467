"""Who did it, end to end: people sign in to the local Entra ID stand-in and the app knows them by their
verified tokens alone.

- opsctl signs in by device code (the CLI in its own process, its code entered on the stand-in's page as
  bob) and approves a version alice registered; the lifecycle and the audit trail name bob by his oid;
- hostile callers change nothing: forged App Service headers, the function key, tokens signed by another
  key, for another app, expired, `alg: none`, HS256 with the public key, or with roles added.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost.azurite import Azurite
from devhost.localaml import register_model_version
from devhost.stack import Stack, local_stack
from devhost.waiting import wait_until
from localaml import samples

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
POLICY = """
rules:
  - name: credit-risk
    models: {name: "credit-risk*"}
    test: {pipeline: model-test, inputs: {test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}
    gates: [{metric: accuracy, min: 0.8}]
    review: {approvers: MLOps.Approver, four_eyes: true, expires_after: 7d}
    promotion: {path: ["registry:shared"]}
    notify: {default: [webhook]}
"""
PROMPT = re.compile(r"open the page (\S+) and enter the code (\S+) to authenticate")


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("identity")
    (workdir / "policy.yaml").write_text(POLICY)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(workdir / "policy.yaml")}, azurite=azurite) as running:
        yield running


def waiting_version(stack: Stack) -> str:
    """alice registers credit-risk; it passes its gates and waits for review. Its version."""
    client = stack.aml.client_as("dev", "alice")
    version = register_model_version(client, "dev", "credit-risk", samples.good_model(seed=1)).version
    wait_until(lambda: stage(stack, version) == "awaiting_review", timeout=90)
    return version


def stage(stack: Stack, version: str) -> str | None:
    record = stack.state.get("lifecycle", f"credit-risk:{version}")
    return record["stage"] if record else None


def opsctl_env(stack: Stack, home: Path) -> dict[str, str]:
    """A new user's shell: the app's URL, the local CA, their own home and opsctl folder, nothing else of ours."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "OPSCTL_CONFIG_DIR": str(home / ".opsctl"),
            "MLOPS_API_URL": stack.host.url, "REQUESTS_CA_BUNDLE": str(stack.aml.entra.ca_file),
            "NO_PROXY": "127.0.0.1,localhost"}


def test_opsctl_signs_in_by_device_code_as_bob_and_approves(stack: Stack, tmp_path: Path) -> None:
    version = waiting_version(stack)
    env = opsctl_env(stack, tmp_path)
    login = subprocess.Popen([sys.executable, "-m", "opsctl", "login", "--device-code"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert login.stderr is not None
    line = login.stderr.readline()
    found = PROMPT.search(line)
    assert found, line
    assert found.group(1) == f"{stack.aml.entra.base_url}/devicelogin"
    stack.aml.entra.complete_device_login(found.group(2), "bob")
    out, err = login.communicate(timeout=120)
    assert login.returncode == 0, out + err

    whoami = subprocess.run([sys.executable, "-m", "opsctl", "whoami", "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert whoami.returncode == 0, whoami.stderr
    assert "bob@contoso.test" in whoami.stdout and "MLOps.Approver" in whoami.stdout
    approve = subprocess.run([sys.executable, "-m", "opsctl", "review", "approve", "credit-risk", version,
                              "--reason", "gate table checked"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
    assert approve.returncode == 0, approve.stdout + approve.stderr

    record = stack.state.get("lifecycle", f"credit-risk:{version}")
    bob = stack.aml.entra.entra.directory.user("bob")
    assert record is not None and bob is not None
    assert (record["review"]["by"], record["review"]["by_oid"], record["review"]["via"]) == (
        "bob@contoso.test", bob.oid, "api")
    assert record["stage"] in ("promoted", "rolling_out", "live")
    audit = stack.admin("GET", "ops/audit", params={"subject": f"credit-risk:{version}", "action": "review"}).json()
    assert [(entry["by"], entry["by_oid"]) for entry in audit["items"]] == [(bob.display_name, bob.oid)]


def forgeries(stack: Stack) -> dict[str, dict[str, str]]:
    """Each hostile request's headers: what an attacker holding dave's token, the function key and the tenant's
    published keys can make."""
    entra = stack.aml.entra
    real = entra.token_for("dave")
    header, _, signature = real.split(".")
    claims = jwt.decode(real, options={"verify_signature": False})
    kid = jwt.get_unverified_header(real)["kid"]
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = entra.entra.keys.current.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    admin = {**claims, "roles": ["MLOps.Admin", "MLOps.Approver"]}
    principal = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [
        {"typ": "name", "val": "bob@contoso.test"}, {"typ": "roles", "val": "MLOps.Admin"}]}).encode()).decode()
    tokens = {
        "signed by another key": jwt.encode(admin, attacker, algorithm="RS256", headers={"kid": kid}),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(admin)}.",
        "HS256 with the public key": _hs256(b64({"alg": "HS256", "typ": "JWT", "kid": kid}), b64(admin), public),
        "roles added to the payload": f"{header}.{b64(admin)}.{signature}",
        "expired": jwt.encode({**admin, "exp": int(time.time()) - 7200, "nbf": int(time.time()) - 10800},
                              attacker, algorithm="RS256", headers={"kid": kid}),
        "for Azure Resource Manager": entra.token_for("erin", ["https://management.azure.com/.default"]),
    }
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    headers["forged x-ms-client-principal"] = {"x-ms-client-principal": principal,
                                               "x-ms-client-principal-name": "bob@contoso.test"}
    headers["function key"] = {"x-functions-key": stack.host.keys.function}
    headers["dave's token plus a forged principal"] = {"Authorization": f"Bearer {real}",
                                                       "x-ms-client-principal": principal}
    return headers


def _hs256(header: str, payload: str, key: bytes) -> str:
    import hashlib
    import hmac
    mac = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def test_hostile_callers_get_401_or_403_and_change_nothing(stack: Stack) -> None:
    def people_s_actions() -> list[dict]:
        entries = stack.admin("GET", "ops/audit", params={"limit": 1000}).json()["items"]
        return [entry for entry in entries if entry.get("by_oid") or entry["action"].startswith("ops.")]

    before = people_s_actions()
    for name, headers in forgeries(stack).items():
        for method, path, body in (
                ("POST", "ops/policy/validate", None),
                ("POST", "ops/endpoints/prod/credit-risk/traffic", {"traffic": {"credit-risk-v1": 100}}),
                ("POST", "ops/lifecycles/credit-risk/1/review", {"decision": "approve", "reason": "forged"}),
                ("POST", "ops/retrain", {"rule": "credit-risk", "request_id": "forged"})):
            answer = requests.request(method, f"{stack.host.url}/api/{path}", headers=headers, json=body,
                                      data="rules: []" if body is None else None, timeout=30)
            expected = 403 if name == "dave's token plus a forged principal" else 401
            assert answer.status_code == expected, (name, path, answer.status_code, answer.text)
    assert people_s_actions() == before, "a refused call acted"
