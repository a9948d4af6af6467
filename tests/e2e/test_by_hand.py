"""The by-hand path (issue 16): the stack `./dev host` runs keeps its state across restarts,
`./dev register` registers a model version from another process (the local Azure ML service
then sends its event to the host), and `./dev send samples/events` ends in lifecycles.

One stack, started twice on the same folder and ports, as a user restarts `./dev host`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.azurite import free_port
from devhost.stack import Stack
from devhost.waiting import wait_until
from localaml.jobs import TERMINAL
from tests.unit.test_http_file import Call, calls
from tools.local_stack import by_hand_stack, connection, reach_lines, read_connection

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def free_pair() -> int:
    """A port whose next port is free too (Azurite's blob and queue ports)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """A command in its own process from the repo's root, as `./dev` runs it from a shell.

    Not with this process's AZUREML_CURRENT_CLOUD: azure-ai-ml records there the custom cloud
    of the clients made here, which a new process does not know.
    """
    env = {name: value for name, value in os.environ.items() if name != "AZUREML_CURRENT_CLOUD"}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env=env)


def lifecycle(stack: Stack, version: str) -> dict[str, Any] | None:
    response = stack.admin("GET", f"ops/lifecycles/credit-risk/{version}", as_user="dave")
    return response.json() if response.status_code == 200 else None


def test_the_by_hand_stack_registers_models_and_keeps_its_state_across_a_restart(tmp_path: Path) -> None:
    workdir = tmp_path / "localdev"
    ports = {"host_port": free_port(), "azureml_port": free_port(), "storage_port": free_pair(),
             "entra_port": free_port()}

    with by_hand_stack(workdir, **ports) as stack:
        info = read_connection(workdir)
        assert info == connection(stack)
        assert (workdir / "connection.json").stat().st_mode & 0o777 == 0o600, "it holds the keys"
        assert info["controlRoom"] == f"{stack.host.url}/api/ops/controlroom"
        printed = "\n".join(reach_lines(info, workdir))
        for value in (stack.host.url, stack.host.keys.function, stack.azurite.connection_string, stack.aml.url,
                      stack.aml.entra.authority, info["controlRoom"], stack.receiver.url):
            assert value in printed
        assert "code=" not in info["controlRoom"] and stack.host.keys.function not in info["controlRoom"]

        registered = run("tools.register_model", "--workdir", str(workdir))
        assert registered.returncode == 0, registered.stderr
        assert "registered credit-risk:1 in dev" in registered.stdout and "as alice" in registered.stdout
        # Nothing but the service's own ModelRegistered event tells the app: the lifecycle is its doing.
        first = wait_until(lambda: lifecycle(stack, "1"), timeout=60)
        assert first["rule"] == "credit-risk"
        registrant = stack.aml.client("dev").models.get("credit-risk", "1").creation_context.created_by
        assert registrant == "alice@contoso.test", "Azure ML records who registered it, from alice's token"

        sent = run("tools.send_events", "samples/events", "--url", stack.host.url,
                   "--key", stack.host.keys.eventgrid_extension)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.count("\n") == len(list((ROOT / "samples" / "events").glob("*.json")))
        listed = stack.admin("GET", "ops/lifecycles", as_user="dave").json()["items"]
        assert ("credit-risk", "1") in {(item["model"], item["version"]) for item in listed}

        key = stack.host.keys.function
        storage = stack.azurite.connection_string
        resources_before = set(stack.aml.service.resources)

    saved = json.loads((workdir / "localaml" / "state.json").read_text())
    assert any(path.endswith("/workspaces/dev/models/credit-risk/versions/1") for path in saved["resources"])
    assert (workdir / "localaml" / "state.json").stat().st_mode & 0o777 == 0o600

    with by_hand_stack(workdir, **ports) as stack:
        assert stack.host.keys.function == key
        assert stack.azurite.connection_string == storage
        now = read_connection(workdir)
        # The same addresses, keys and token; only the stack's internal helpers (the storage proxy behind the
        # service, the notification receiver) take a new free port each run.
        for name in ("host", "functionKey", "eventGridKey", "storage", "controlRoom"):
            assert now[name] == info[name]
        for name in ("MLOPS_AZUREML_ENDPOINT", "MLOPS_AUTH_AUTHORITY", "MLOPS_AUTH_TENANT_ID", "MLOPS_AUTH_CLIENT_ID",
                     "MLOPS_WORKSPACES", "MLOPS_REGISTRY"):
            assert now["azureml"][name] == info["azureml"][name]
        # Not seeded again: the same resources (jobs it started meanwhile aside), nothing left half done.
        assert resources_before <= set(stack.aml.service.resources)
        jobs = [r for r in stack.aml.service.resources.values() if r["type"].lower().endswith("/jobs")]
        assert jobs and all(job["properties"]["status"] in TERMINAL for job in jobs)

        model = stack.aml.client("dev").models.get("credit-risk", "1")
        assert model.version == "1"
        again = lifecycle(stack, "1")
        assert again is not None and again["rule"] == "credit-risk"
        assert again["history"][0] == first["history"][0]
        # The service goes on from where it was: a next version (the drift sample's retraining may have made
        # one too), whose event reaches the host.
        registered = run("tools.register_model", "--workdir", str(workdir), "--quality", "bad")
        found = re.search(r"registered credit-risk:(\d+) in dev", registered.stdout)
        assert found and int(found[1]) >= 2, registered.stdout + registered.stderr
        wait_until(lambda: lifecycle(stack, found[1]), timeout=60)

        answers = [send(call, now, stack.token("erin")) for call in calls()]
        assert all(status < 500 for status, _ in answers), answers
        assert answers[0] == (200, "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"), "the validation handshake"


def send(call: Call, info: dict[str, Any], token: str) -> tuple[int, str]:
    """One call of test.http with the values `./dev host` printed (and `opsctl token` would print) in place of
    its placeholders."""
    values = {"http://127.0.0.1:7071": info["host"], "<the output of: opsctl token>": token,
              "<functionKey from .localdev/connection.json>": info["functionKey"],
              "<eventGridKey from .localdev/connection.json>": info["eventGridKey"]}

    def filled(text: str) -> str:
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        return text

    headers = {name: filled(value) for name, value in call.headers.items()}
    response = requests.request(call.method, filled(call.url), headers=headers, data=call.body.encode() or None,
                                timeout=60)
    try:
        validation = response.json().get("validationResponse", "") if response.status_code == 200 else ""
    except (ValueError, AttributeError):
        validation = ""
    return response.status_code, validation or f"{call.method} {call.path}"
