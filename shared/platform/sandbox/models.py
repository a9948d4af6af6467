"""Model versions: ONNX files with tags, in workspaces and registries.

A version is immutable: its file and sha256 never change, only its tags. Versions are
numbered per location and name (1, 2, ...); a promoted copy keeps its number.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from shared.platform.port import ModelVersion, NotFound
from shared.platform.sandbox.store import Rejected, SandboxStore, check_location, check_name, key, registry_of

REGISTRY_URI = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")
WORKSPACE_URI = re.compile(r"^azureml:(?P<name>[^:/]+):(?P<version>[^:/]+)$")
KIND = "models"
COUNTERS = "model-versions"
FILE = "model.onnx"


def model_uri(location: str, name: str, version: str) -> str:
    """The URI a deployment references, as Azure ML spells it."""
    registry = registry_of(location)
    if registry:
        return f"azureml://registries/{registry}/models/{name}/versions/{version}"
    return f"azureml:{name}:{version}"


def from_record(doc: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        location=doc["location"],
        name=doc["name"],
        version=doc["version"],
        tags=doc.get("tags") or {},
        uri=model_uri(doc["location"], doc["name"], doc["version"]),
    )


def _key(location: str, name: str, version: str) -> str:
    check_location(location)
    check_name("model", name)
    check_name("model version", version)
    return key(location, name, version)


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise Rejected(f"model tags must map strings to strings, got {tags!r}")
    return dict(tags)


def _count_up_to(store: SandboxStore, location: str, name: str, version: int | None = None) -> int:
    """Advance the version counter (to `version`, or by one); return the version."""

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        latest = int((doc or {}).get("latest", 0))
        return {"latest": max(latest, version) if version is not None else latest + 1}

    return int(store.update(COUNTERS, key(location, name), change)["latest"])


def _store_version(store: SandboxStore, location: str, name: str, version: str, data: bytes, tags: dict) -> dict:
    store.put_file("models", location, name, version, FILE, data=data)
    doc = {
        "location": location,
        "name": name,
        "version": version,
        "tags": tags,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "created": datetime.now(UTC).isoformat(),
    }
    store.create(KIND, key(location, name, version), doc)
    return doc


def register(store: SandboxStore, location: str, name: str, data: bytes, tags: dict[str, str]) -> ModelVersion:
    """Register `data` (an ONNX file) as the next version of `name` at `location`."""
    _key(location, name, "1")
    if not isinstance(data, bytes | bytearray) or not data:
        raise Rejected(f"model {name!r}: the ONNX file is empty or not bytes")
    version = str(_count_up_to(store, location, name))
    return from_record(_store_version(store, location, name, version, bytes(data), _check_tags(tags)))


def get(store: SandboxStore, location: str, name: str, version: str) -> ModelVersion:
    doc = store.get(KIND, _key(location, name, version))
    if doc is None:
        raise NotFound(f"model {name}:{version} does not exist in {location}")
    return from_record(doc)


def set_tags(store: SandboxStore, location: str, name: str, version: str, tags: dict[str, str]) -> None:
    """Add or overwrite these tags; other tags are kept."""
    record = _key(location, name, version)
    tags = _check_tags(tags)

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            raise NotFound(f"model {name}:{version} does not exist in {location}")
        doc["tags"] = {**doc.get("tags", {}), **tags}
        return doc

    store.update(KIND, record, change)


def read_bytes(store: SandboxStore, location: str, name: str, version: str) -> bytes:
    get(store, location, name, version)
    return store.get_file("models", location, name, version, FILE)


def promote(store: SandboxStore, model: ModelVersion, target: str) -> ModelVersion:
    """Copy the version (file and tags, same number) to `target`; an identical copy is returned as is."""
    check_location(target)
    source = store.get(KIND, _key(model.location, model.name, model.version))
    if source is None:
        raise NotFound(f"model {model.name}:{model.version} does not exist in {model.location}")
    existing = store.get(KIND, key(target, model.name, model.version))
    if existing is None:
        data = store.get_file("models", model.location, model.name, model.version, FILE)
        _store_version(store, target, model.name, model.version, data, source.get("tags", {}))
        if model.version.isdigit():
            _count_up_to(store, target, model.name, int(model.version))
        existing = store.get(KIND, key(target, model.name, model.version)) or {}
    if existing.get("sha256") != source.get("sha256"):
        raise Rejected(
            f"{target} already has a different model {model.name}:{model.version}; "
            "promotion would overwrite it"
        )
    return from_record(existing)


def parse_uri(uri: str, default_location: str) -> tuple[str, str, str]:
    """(location, name, version) from `azureml:<name>:<version>` or a registry URI."""
    found = REGISTRY_URI.match(uri)
    if found:
        return "registry:" + found["registry"], found["name"], found["version"]
    found = WORKSPACE_URI.match(uri)
    if found:
        return default_location, found["name"], found["version"]
    raise Rejected(
        f"model URI {uri!r} is not azureml:<name>:<version> or "
        "azureml://registries/<registry>/models/<name>/versions/<version>"
    )


def describe(store: SandboxStore, location: str, name: str, version: str) -> dict[str, Any]:
    """The stored record of a version (with its sha256 and size)."""
    doc = store.get(KIND, _key(location, name, version))
    if doc is None:
        raise NotFound(f"model {name}:{version} does not exist in {location}")
    return doc
