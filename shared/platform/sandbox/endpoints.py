"""Online endpoints and their deployments, with Azure ML's rules for traffic.

Long-running operations are started, not awaited, and finish by the clock: a new
deployment is `Creating` until its `ready_at`, a traffic update leaves the endpoint
`Updating` until its `applies_at` (and the old split keeps serving until then). States
are evaluated when read, so nothing runs in the background.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from shared.platform.port import Deployment, Endpoint, ModelVersion, NotFound, TryLater
from shared.platform.sandbox.store import Rejected, SandboxStore, check_name, check_workspace, key

KIND = "endpoints"
MAX_MIRROR_PERCENT = 50
Doc = dict[str, Any]


def record_key(workspace: str, endpoint: str) -> str:
    return key(check_workspace(workspace), check_name("endpoint", endpoint))


def create(store: SandboxStore, workspace: str, endpoint: str) -> None:
    """Create the endpoint with no deployments; an existing one is left as it is."""
    doc = {
        "workspace": workspace, "name": endpoint, "created": datetime.now(UTC).isoformat(),
        "traffic": {}, "mirror_traffic": {}, "previous": {"traffic": {}, "mirror_traffic": {}},
        "applies_at": 0.0, "deployments": {},
    }
    store.create(KIND, record_key(workspace, endpoint), doc)


def load(store: SandboxStore, workspace: str, endpoint: str) -> Doc:
    doc = store.get(KIND, record_key(workspace, endpoint))
    if doc is None:
        raise NotFound(f"online endpoint {endpoint!r} does not exist in workspace {workspace!r}")
    return doc


def deployment_state(entry: Doc, now: float) -> str:
    return "Creating" if now < entry["ready_at"] else entry["outcome"]


def routes(doc: Doc, now: float) -> tuple[dict[str, int], dict[str, int]]:
    """The live and mirror traffic that requests follow now (the old split while updating)."""
    current = doc if now >= doc["applies_at"] else doc["previous"]
    return current["traffic"], current["mirror_traffic"]


def view(doc: Doc, now: float) -> Endpoint:
    """The endpoint as Azure ML reports it: while Updating, with the split it was asked for."""
    return Endpoint(
        workspace=doc["workspace"],
        name=doc["name"],
        provisioning_state="Updating" if now < doc["applies_at"] else "Succeeded",
        traffic=doc["traffic"],
        mirror_traffic=doc["mirror_traffic"],
        deployments=[
            Deployment(name=name, model_uri=entry["model"]["uri"], provisioning_state=deployment_state(entry, now))
            for name, entry in sorted(doc["deployments"].items())
        ],
    )


def _change(store: SandboxStore, workspace: str, endpoint: str, change: Any) -> Doc:
    def guarded(doc: Doc | None) -> Doc:
        if doc is None:
            raise NotFound(f"online endpoint {endpoint!r} does not exist in workspace {workspace!r}")
        return change(doc)

    return store.update(KIND, record_key(workspace, endpoint), guarded)


def _refuse_while_updating(doc: Doc, now: float) -> None:
    if now < doc["applies_at"]:
        wait = round(doc["applies_at"] - now, 3)
        raise TryLater(f"endpoint {doc['name']!r} is Updating; retry in {wait} s", retry_after=wait)


def add_deployment(
    store: SandboxStore, workspace: str, endpoint: str, deployment: str, model: ModelVersion,
    sha256: str, outcome: str, error: str | None, delay: float, instance_type: str = "",
) -> None:
    """Start creating a deployment of `model`; an existing deployment is left as it is."""
    check_name("deployment", deployment)

    def change(doc: Doc) -> Doc:
        doc["deployments"].setdefault(deployment, {
            "model": model.model_dump(), "sha256": sha256, "instance_type": instance_type,
            "ready_at": time.time() + delay, "outcome": outcome, "error": error, "error_rate": 0.0,
        })
        return doc

    _change(store, workspace, endpoint, change)


def remove_deployment(store: SandboxStore, workspace: str, endpoint: str, deployment: str) -> None:
    """Delete a deployment with no live or mirror traffic; deleting a missing one is a no-op."""
    check_name("deployment", deployment)

    def change(doc: Doc) -> Doc:
        if deployment not in doc["deployments"]:
            return doc
        _refuse_while_updating(doc, time.time())
        for field in ("traffic", "mirror_traffic"):
            if doc[field].get(deployment, 0) > 0:
                raise Rejected(
                    f"deployment {deployment!r} still has {doc[field][deployment]}% {field.replace('_', ' ')} "
                    f"on endpoint {endpoint!r}; set it to 0 before deleting"
                )
        del doc["deployments"][deployment]
        for field in ("traffic", "mirror_traffic"):
            doc[field].pop(deployment, None)
        return doc

    _change(store, workspace, endpoint, change)


def check_traffic(states: dict[str, str], traffic: dict[str, int], mirror: dict[str, int]) -> None:
    """Azure ML's rules: live traffic sums to 100 (or 0), mirror goes to one deployment,
    at most 50%, never to a deployment with live traffic; only to existing, ready deployments."""
    for field, split in (("traffic", traffic), ("mirror_traffic", mirror)):
        if not isinstance(split, dict):
            raise Rejected(f"{field} must map deployment names to percentages, got {split!r}")
        for name, percent in split.items():
            if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
                raise Rejected(f"{field}[{name!r}] must be an integer from 0 to 100, got {percent!r}")
            if name not in states:
                raise Rejected(f"{field} names deployment {name!r}, which does not exist")
            if percent and states[name] == "Creating":
                raise TryLater(f"deployment {name!r} is still Creating", retry_after=1.0)
            if percent and states[name] != "Succeeded":
                raise Rejected(f"deployment {name!r} is {states[name]} and cannot take traffic")
    if sum(traffic.values()) not in (0, 100):
        raise Rejected(f"traffic must sum to 100 (or 0 to stop traffic), got {sum(traffic.values())}: {traffic}")
    mirrored = {name: percent for name, percent in mirror.items() if percent}
    if len(mirrored) > 1:
        raise Rejected(f"mirror traffic can go to only one deployment, got {sorted(mirrored)}")
    for name, percent in mirrored.items():
        if percent > MAX_MIRROR_PERCENT:
            raise Rejected(f"mirror traffic is at most {MAX_MIRROR_PERCENT}%, got {percent}% for {name!r}")
        if traffic.get(name, 0):
            raise Rejected(f"deployment {name!r} cannot take both live and mirror traffic")


def set_traffic(
    store: SandboxStore, workspace: str, endpoint: str, traffic: dict[str, int], mirror: dict[str, int], delay: float
) -> None:
    """Start a traffic update; the endpoint is `Updating` for `delay` seconds and refuses others meanwhile."""

    def change(doc: Doc) -> Doc:
        now = time.time()
        _refuse_while_updating(doc, now)
        states = {name: deployment_state(entry, now) for name, entry in doc["deployments"].items()}
        check_traffic(states, traffic, mirror)
        if (traffic, mirror) == (doc["traffic"], doc["mirror_traffic"]):
            return doc
        doc["previous"] = {"traffic": doc["traffic"], "mirror_traffic": doc["mirror_traffic"]}
        doc["traffic"], doc["mirror_traffic"] = dict(traffic), dict(mirror)
        doc["applies_at"] = now + delay
        return doc

    _change(store, workspace, endpoint, change)


def set_fault(store: SandboxStore, workspace: str, endpoint: str, deployment: str, error_rate: float) -> None:
    """Make `deployment` fail this share of its requests (0 to 1)."""
    if isinstance(error_rate, bool) or not isinstance(error_rate, int | float) or not 0 <= error_rate <= 1:
        raise Rejected(f"error_rate must be a number from 0 to 1, got {error_rate!r}")

    def change(doc: Doc) -> Doc:
        if deployment not in doc["deployments"]:
            raise NotFound(f"deployment {deployment!r} does not exist on endpoint {endpoint!r}")
        doc["deployments"][deployment]["error_rate"] = float(error_rate)
        return doc

    _change(store, workspace, endpoint, change)
