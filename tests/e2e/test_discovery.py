"""Every event dropped: the resync's discovery alone finds the registered versions, and each is tested,
judged and, when good, rolled out. The stack's Azure ML events go to the receiver, never to the app, and
its resync runs every 5 seconds."""

from __future__ import annotations

import time
from pathlib import Path

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import wait_until
from localaml import samples
from tests.e2e.conftest import write_policy

MODEL = "credit-risk"
RESYNC_PERIOD = 5.0  # the e2e stack's MLOPS_RESYNC_SCHEDULE


def stage(stack: Stack, version: str) -> str | None:
    record = stack.state.get("lifecycle", f"{MODEL}:{version}")
    return record["stage"] if record else None


def captured(stack: Stack) -> list[str]:
    return [n.body[0]["subject"] for n in stack.receiver.received
            if n.path == "/aml-events" and n.body[0]["eventType"].endswith("ModelRegistered")]


def test_with_every_event_dropped_each_version_is_tested_judged_and_rolled_out(
    azurite: Azurite, tmp_path: Path,
) -> None:
    policy = write_policy(tmp_path, bake=1, min_requests=10)
    with local_stack(tmp_path, {"MLOPS_POLICY_PATH": str(policy)}, azurite=azurite, capture_events=True) as stack:
        with TrafficGenerator(stack.aml, "prod", MODEL, per_second=40):
            registered = time.monotonic()
            stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
            stack.aml.register_model("dev", MODEL, samples.bad_model(seed=2), {})
            # Found within one resync period (and the period's own work), with no event.
            wait_until(lambda: all(stage(stack, v) is not None for v in ("1", "2")), timeout=RESYNC_PERIOD + 25)
            found_after = time.monotonic() - registered
            wait_until(lambda: stage(stack, "2") == "failed", timeout=90)
            wait_until(lambda: stage(stack, "1") == "live", timeout=120)

            # A later version, also without its event, replaces the one serving.
            stack.aml.register_model("dev", MODEL, samples.good_model(seed=3), {})
            wait_until(lambda: stage(stack, "3") == "live", timeout=150)

        assert sorted(captured(stack)) == [f"models/{MODEL}:{v}" for v in ("1", "2", "3")], "each event was sent..."
        audit = stack.state.read_audit()
        assert not [e for e in audit if e.action == "intake"], "...and none reached the app"
        assert sorted(e.subject for e in audit if e.action == "discover" and e.outcome == "started") == [
            f"{MODEL}:{v}" for v in ("1", "2", "3")]
        assert sorted(e.subject for e in audit if e.action == "test" and e.outcome == "submitted") == [
            f"{MODEL}:{v}" for v in ("1", "2", "3")], "each tested once"
        assert stack.platform.get_model("dev", MODEL, "2").tags["mlops.stage"] == "rejected"
        assert stack.platform.get_endpoint("prod", MODEL).traffic == {"credit-risk-v3": 100}
        wait_until(lambda: stage(stack, "1") in ("superseded", "retired"), timeout=60,
                   what="v1 to step down at its next reconcile")
        print(f"discovered {found_after:.1f} s after registration (resync every {RESYNC_PERIOD:.0f} s)")


def test_a_version_its_event_announced_but_not_shown_yet_is_looked_for_again(
    azurite: Azurite, tmp_path: Path,
) -> None:
    """Eventual consistency: the event arrives, Azure ML answers 404 for the version a few times. With no
    resync to rescue it, the work item is delivered again with a delay until the version shows."""
    policy = write_policy(tmp_path)
    settings = {"MLOPS_POLICY_PATH": str(policy), "MLOPS_RESYNC_SCHEDULE": "0 0 0 1 1 *"}
    with local_stack(tmp_path, settings, azurite=azurite) as stack:
        stack.aml.service.fail("GET", rf"/models/{MODEL}/versions/1$", 404, times=3, code="UserError",
                               message="The specified resource was not found.")
        stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
        wait_until(lambda: stage(stack, "1") not in (None, "testing"), timeout=90)

        reacted = [e for e in stack.state.read_audit() if e.action == "react"]
        deferred = [e for e in reacted if e.outcome == "deferred"]
        assert deferred and all("not in dev yet" in e.reason for e in deferred), reacted
        assert not [e for e in reacted if e.outcome in ("ignored", "error")], reacted
        assert not [e for e in stack.state.read_audit() if e.action == "discover"], "no resync ran"
