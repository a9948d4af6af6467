"""The README's by-hand path to its outcomes, on the tests' fast timers (issue 26): the stack `./dev host` runs,
with its client traffic on the prod endpoint, and the README's commands in their own processes. v1 goes live
at once (a first deployment: no canary); the drift sample's retraining registers v2, whose rollout is judged
on the clients' live requests at every phase and ends live; a bad version fails its gates, and a file that is
no ONNX model fails its test, each saying why where ops and opsctl see it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import free_port
from devhost.stack import Stack
from devhost.waiting import wait_until
from tests.e2e.test_by_hand import free_pair, lifecycle, run
from tools.local_stack import by_hand_stack, client_traffic, reason_lines

pytestmark = pytest.mark.e2e


def stage(stack: Stack, version: str) -> str | None:
    record = lifecycle(stack, version)
    return record["stage"] if record else None


def rollout(stack: Stack) -> dict[str, Any]:
    return stack.admin("GET", "ops/rollouts/prod/credit-risk", as_user="dave").json()


def printed(stack: Stack, kind: str) -> list[str]:
    """What `./dev host` prints under the notification of `kind` (its reason)."""
    return [line for item in stack.receiver.received if item.path == "/ops" and item.body["type"] == kind
            for line in reason_lines(item.body)]


def test_the_by_hand_path_gives_what_the_readme_predicts(tmp_path: Path) -> None:
    workdir = tmp_path / ".localdev"
    ports = {"host_port": free_port(), "azureml_port": free_port(), "storage_port": free_pair(),
             "entra_port": free_port()}
    # On the fast timers a rollout is analysed every second, not every 30 s: more clients (two, as each waits for
    # its answers), so that a 10 % step sees its 20 requests well before the policy's 10 inconclusive analyses run
    # out, as 10 a second do at 30 s.
    with by_hand_stack(workdir, fast=True, **ports) as stack, client_traffic(stack, 100), \
            client_traffic(stack, 100):
        registered = run("tools.register_model", "--workdir", str(workdir))
        assert registered.returncode == 0, registered.stderr
        wait_until(lambda: stage(stack, "1") == "live", timeout=120, what="v1 live")
        first = rollout(stack)
        assert [e["action"] for e in first["history"]] == ["start", "step", "succeeded"]
        assert first["history"][-1]["reason"] == "first deployment on an empty endpoint: live without analysis"

        key = stack.host.keys.eventgrid_extension
        sent = run("tools.send_events", "samples/events", "--url", stack.host.url, "--key", key)
        assert sent.returncode == 0, sent.stderr
        assert stage(stack, "2") is None, "samples/events starts no retraining"
        sent = run("tools.send_events", "samples/drift", "--url", stack.host.url, "--key", key)
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: stage(stack, "2") in ("live", "rolled_back", "failed"), timeout=240,
                   what="the retrained v2 to be judged")
        assert stage(stack, "2") == "live", rollout(stack)["history"]
        judged = rollout(stack)
        analyses = [e for e in judged["history"] if e["action"].startswith("analysis:")]
        assert judged["version"] == "2" and judged["state"] == "succeeded"
        passed = [e for e in analyses if e["action"] == "analysis:pass"]
        assert "analysis:fail" not in {e["action"] for e in analyses}, judged["history"]
        assert len(passed) == 4, "the mirror phase and each of 10, 50, 100 % passed"
        assert all(e["metrics"]["requests"] >= 20 for e in passed), "judged on the clients' requests"

        bad = run("tools.register_model", "--workdir", str(workdir), "--quality", "bad")
        assert bad.returncode == 0, bad.stderr
        wait_until(lambda: stage(stack, "3") == "failed", timeout=120, what="the bad v3 failed")
        assert lifecycle(stack, "3")["history"][-1]["reason"].startswith("failed gates: accuracy")  # type: ignore[index]
        wait_until(lambda: any(line.strip().startswith("failed gates: accuracy")
                               for line in printed(stack, "model.rejected")), timeout=30)

        stack.aml.register_model("dev", "credit-risk", b"root:x:0:0:root:/root:/bin/bash\n", {})
        wait_until(lambda: stage(stack, "4") == "failed", timeout=120, what="the file that is no model failed")
        record = lifecycle(stack, "4")
        assert record is not None and "does not load in ONNX Runtime" in record["history"][-1]["reason"]
        assert "does not load in ONNX Runtime" in record["test_job_log"]
        assert record["test_job_url"].startswith(stack.aml.url.rstrip("/") + "/localaml/jobs/dev/")
