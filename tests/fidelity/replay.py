"""Replaying recorded requests against the local service and comparing the answers' shapes.

A fixture under `recordings/` is `{"source", "request", "response"}`: an excerpt of a public
recording (Azure/azure-sdk-assets) or REST spec example (Azure/azure-rest-api-specs), or
what the docs describe, named in `source`. Its request is sent with the recorded ARM path
moved onto the local service's subscription, resource group, workspace `dev` and
registry `mlops-registry`; the answer must have the recorded status, the recorded LRO /
Retry-After headers, and every recorded body field with the same JSON type (values are
not compared: ids, names, times and etags differ by nature).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from localaml.service import LocalAzureML

RECORDINGS = Path(__file__).parent / "recordings"
WORKSPACE = re.compile(
    r"^(/mlflow/v1\.0)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/[^/]+",
    re.IGNORECASE,
)
REGISTRY = re.compile(
    r"^(/mferp/managementfrontend)?/subscriptions/[^/]+/resourceGroups/[^/]+"
    r"/providers/Microsoft\.MachineLearningServices/registries/[^/]+",
    re.IGNORECASE,
)
DISCOVERY = re.compile(r"^/registrymanagement/v1\.0/registries/[^/]+/")
SKIPPED_KEYS = {"etag"}  # an etag is a value of the moment, not part of the shape
# Maps whose keys are data (tag names, deployment names ...), not fields: only "an object" is compared.
FREE_MAPS = {
    "tags", "flavors", "traffic", "mirrorTraffic", "environmentVariables", "services", "inputs", "outputs",
    "registryFqdns",
}


@dataclass(frozen=True)
class Fixture:
    name: str
    source: dict[str, str]
    request: dict[str, Any]
    response: dict[str, Any]

    @property
    def cited(self) -> str:
        return f"{self.source['repo']}/{self.source['path']} ({self.source['what']})"


def fixture_names() -> list[str]:
    return sorted(path.stem for path in RECORDINGS.glob("*.json"))


def load(name: str) -> Fixture:
    data = json.loads((RECORDINGS / f"{name}.json").read_text())
    return Fixture(name, data["source"], data["request"], data["response"])


def local_path(path: str, service: LocalAzureML) -> str:
    """A recorded path on the local service: workspace `dev`, registry `mlops-registry`."""
    path = WORKSPACE.sub(lambda found: (found[1] or "") + service.workspace_id("dev"), path)
    path = REGISTRY.sub(lambda found: (found[1] or "") + service.registry_id("mlops-registry"), path)
    return DISCOVERY.sub("/registrymanagement/v1.0/registries/mlops-registry/", path)


class Client:
    """Requests to the local service with a Resource Manager token, as the SDK sends them (the test CA is trusted
    by env)."""

    def __init__(self, service: LocalAzureML, token: str) -> None:
        self.service = service
        self.token = token

    def send(
        self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None, *, rewrite: bool = True
    ) -> requests.Response:
        """Send to the local service; a recorded path is moved onto its workspace and registry unless told not."""
        url = self.service.base_url.rstrip("/") + (local_path(path, self.service) if rewrite else path)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        return requests.request(
            method, url, params=query or {}, json=body, headers=headers, timeout=30,
        )

    def replay(self, name: str) -> requests.Response:
        """Send a fixture's recorded request."""
        request = load(name).request
        return self.send(request["method"], request["path"], request["query"], request["body"])


def shape_differences(recorded: Any, ours: Any, where: str = "body") -> list[str]:
    """Where `ours` lacks a field of `recorded` or has it with another JSON type.

    null carries no type (any value will do, the field must be there); numbers are
    numbers (0 and 0.0 alike); a recorded list item must have a match among ours; the
    keys of free maps (tags, a resource's `properties.properties`, traffic ...) are data,
    their values are compared as a list's items.
    """
    if recorded is None:
        return []
    if isinstance(recorded, bool) or isinstance(ours, bool):
        return [] if isinstance(recorded, bool) and isinstance(ours, bool) else [f"{where}: {ours!r} is not a boolean"]
    if isinstance(recorded, int | float):
        return [] if isinstance(ours, int | float) else [f"{where}: {ours!r} is not a number"]
    if isinstance(recorded, str):
        return [] if isinstance(ours, str) else [f"{where}: {ours!r} is not a string"]
    if isinstance(recorded, list):
        if not isinstance(ours, list):
            return [f"{where}: {ours!r} is not a list"]
        missing = []
        for index, item in enumerate(recorded):
            if not any(not shape_differences(item, candidate) for candidate in ours):
                best = shape_differences(item, ours[0], f"{where}[0]") if ours else [f"{where}: empty"]
                missing.append(f"{where}: nothing like recorded item {index}: {'; '.join(best)}")
        return missing
    if not isinstance(ours, dict):
        return [f"{where}: {ours!r} is not an object"]
    if where.rsplit(".", 1)[-1] in FREE_MAPS or where.endswith(".properties.properties"):
        # Keys are data (an empty map is as good as any); values keep their shape (a region's FQDNs ...).
        return shape_differences(list(recorded.values()), list(ours.values()), f"{where}.*") if ours else []
    differences = []
    for key, value in recorded.items():
        if key in SKIPPED_KEYS:
            continue
        if key not in ours:
            differences.append(f"{where}.{key}: missing")
        else:
            differences += shape_differences(value, ours[key], f"{where}.{key}")
    return differences


def header_differences(recorded: dict[str, str], ours: requests.structures.CaseInsensitiveDict[str]) -> list[str]:
    return [f"header {name}: missing" for name in recorded if name not in ours]
