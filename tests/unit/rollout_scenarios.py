"""Rollout records in every state and phase, made by the rollout machine itself (`shared/domain/rollout.py`)
on a fake clock, as the admin API returns them: for the tests that check what the control room and
opsctl say about a record against the record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain import rollout
from shared.domain.policy import HealthGates, MirrorPhase, RolloutPlan
from shared.domain.ports import Deployment, DeploymentMetrics, Endpoint
from shared.domain.records import RolloutAction

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BAKE = 2
GOOD = DeploymentMetrics(requests=300, errors=0, latency_p95_ms=20)
FEW = DeploymentMetrics(requests=3, errors=0, latency_p95_ms=20)
BAD = DeploymentMetrics(requests=300, errors=60, latency_p95_ms=20)


def plan(mirror: bool = True, manual_gates: tuple[int, ...] = ()) -> RolloutPlan:
    return RolloutPlan(workspace="prod", endpoint="credit-risk", steps=[10, 50, 100], bake_seconds=BAKE,
                       mirror=MirrorPhase(percent=20, bake_seconds=BAKE) if mirror else None,
                       gates=HealthGates(min_requests=20, max_error_rate=0.05), manual_gates=list(manual_gates),
                       inconclusive_limit=3, retire_previous_after_seconds=5)


class Run:
    """One rollout driven tick by tick against an endpoint that takes each change asked of it."""

    def __init__(self, baseline: dict[str, int], version: str = "2", mirror: bool = True,
                 manual_gates: tuple[int, ...] = ()) -> None:
        self.now = T0
        self.deployment = f"credit-risk-v{version}"
        self.names = [*baseline, self.deployment]
        self.endpoint = self._endpoint(baseline, {})
        self.record = rollout.begin("credit-risk", plan(mirror, manual_gates), "credit-risk", version, self.deployment,
                                    self.endpoint, "test", self.now, "promoted to registry:shared").record
        self.snapshots: dict[str, dict[str, Any]] = {}

    def _endpoint(self, traffic: dict[str, int], mirror: dict[str, int]) -> Endpoint:
        return Endpoint(workspace="prod", name="credit-risk", traffic=traffic, mirror_traffic=mirror,
                        deployments=[Deployment(name=name, model_uri=f"azureml:credit-risk:{name[-1]}")
                                     for name in self.names])

    def _moved(self, move: rollout.Move) -> None:
        self.record = move.record
        for action in move.actions:
            if isinstance(action, rollout.SetTraffic):
                self.endpoint = self._endpoint(action.traffic, action.mirror)
                self.record = rollout.applied(self.record, rollout.Outcome.APPLIED, "", self.now, "engine").record
            elif isinstance(action, rollout.Retire):
                self.names = [name for name in self.names if name not in action.deployments]

    def tick(self, metrics: DeploymentMetrics | None = None, after: float = BAKE) -> Run:
        self.now += timedelta(seconds=after)
        move = rollout.advance(self.record, self.endpoint, self.now, "timer")
        if any(isinstance(action, rollout.Measure) for action in move.actions):
            move = rollout.advance(self.record, self.endpoint, self.now, "timer", metrics or GOOD)
        self._moved(move)
        return self

    def act(self, action: RolloutAction, full: bool = False) -> Run:
        self.now += timedelta(seconds=1)
        self._moved(rollout.act(self.record, action, "erin", "checked the dashboards", self.now, full=full))
        return self

    def snap(self, name: str) -> Run:
        document = self.record.model_dump(mode="json")
        document["live"] = {"traffic": self.endpoint.traffic, "mirror_traffic": self.endpoint.mirror_traffic}
        self.snapshots[name] = document
        return self


def scenarios() -> dict[str, dict[str, Any]]:
    """Named records: every state (and `retired`) and every phase, first deployments and canaries, skipped steps,
    one and several analyses."""
    found: dict[str, dict[str, Any]] = {}
    first = Run({}, version="1").snap("first: provisioning").tick().snap("first: at 100% without analysis")
    first.tick().snap("first: live").tick(after=10).snap("first: live, retired")
    canary = Run({"credit-risk-v1": 100}).snap("canary: provisioning").tick().snap("canary: mirror")
    canary.tick().snap("canary: 10%").tick(FEW).snap("canary: 10%, one inconclusive")
    canary.tick().snap("canary: 50%").tick().snap("canary: 100%").tick().snap("canary: live")
    canary.tick(after=10).snap("canary: live, retired")
    gated = Run({"credit-risk-v1": 100}, manual_gates=(50,)).tick().tick().tick().snap("gated: awaiting approval")
    gated.act(RolloutAction.PAUSE).snap("gated: paused")
    bad = Run({"credit-risk-v1": 100}).tick().tick()
    bad.tick(BAD).snap("bad: rolled back")
    starved = Run({"credit-risk-v1": 100}, mirror=False).tick()
    for _ in range(3):
        starved.tick(FEW)
    starved.snap("starved: rolled back after inconclusive analyses")
    full = Run({"credit-risk-v1": 100}).tick().snap("full: mirror").act(RolloutAction.PROMOTE, full=True)
    full.snap("full: promoted to 100%").tick().snap("full: live")
    rolling = Run({"credit-risk-v1": 100}).tick().tick()
    rolling.record = rollout.act(rolling.record, RolloutAction.ABORT, "erin", "wrong model", rolling.now).record
    rolling.snap("aborting: rolling back")
    failed = rollout.applied(rolling.record, rollout.Outcome.REFUSED, "409 Conflict", rolling.now, "engine").record
    rolling.record = failed
    rolling.snap("aborting: failed")
    for run in (first, canary, gated, bad, starved, full, rolling):
        found.update(run.snapshots)
    return found
