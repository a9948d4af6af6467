"""Model versions: registered by a PUT (the SDK's `models.create_or_update`) or by a job's output.

Azure ML keeps a container per model name with `latestVersion` and `nextVersion`, which the
SDK reads to number a version it registers without one (`_get_next_version_from_container`
in azure-ai-ml); the container is made by the first version's PUT. A version's data URI
cannot change once registered: the service answers the SDK's `ASSET_PATH_ERROR` message
(azure-ai-ml `_common.py`). A new version in a workspace publishes `ModelRegistered` to
Event Grid (Azure ML Event Grid schema docs; sample in `tests/fixtures/aml-events`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from localaml import events, registries
from localaml.assets import count_version
from localaml.datastores import (
    ACCOUNT,
    DEFAULT_DATASTORE,
    STORAGE_SUFFIX,
    registry_container,
    workspace_container,
)
from localaml.errors import Reply, user_error
from localaml.service import Hooks

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

# What the SDK matches (`ASSET_PATH_ERROR` in azure.ai.ml.constants._common) to explain a changed path.
ASSET_PATH_ERROR = (
    "(UserError) A data version with this name and version already exists. If you are trying to create a new "
    "data version, use a different name or version. If you are trying to update an existing data version, the "
    "existing asset's data uri cannot be changed. Only tags, description, and isArchived can be updated."
)
MUTABLE = ("tags", "description", "isArchived", "stage")
SCOPE = re.compile(r"^(?P<scope>/subscriptions/.+/(?P<kind>workspaces|registries)/(?P<where>[^/]+))/models/")


def install(service: LocalAzureML) -> None:
    hooks = Hooks(put=put_version)
    service.on("workspaces/models/versions", hooks)
    service.on("registries/models/versions", hooks)


def put_version(
    service: LocalAzureML, path: str, resource: dict[str, Any], existing: dict[str, Any] | None
) -> Reply | None:
    """Register a version, or update the tags / description / archive flag of an existing one."""
    properties = resource["properties"]
    uri = properties.get("modelUri")
    if existing is not None:
        # ARM paths are case-insensitive: the SDK sends back `resourcegroups` for Azure's `resourceGroups`.
        if uri and uri.lower() != str(existing["properties"].get("modelUri", "")).lower():
            raise user_error(ASSET_PATH_ERROR.removeprefix("(UserError) "), "ImmutableAssetPath")
        kept = dict(existing["properties"])
        kept.update({key: properties[key] for key in MUTABLE if properties.get(key) is not None})
        resource["properties"] = kept
        return None
    if not uri:
        raise user_error("The model version must have a modelUri.", "RequiredField", target="modelUri")
    properties.setdefault("modelType", "custom_model")
    properties.setdefault("flavors", {})
    properties.setdefault("stage", "Development")  # as recorded (azure-sdk-assets, model test_crud_file.json)
    properties.setdefault("isAnonymous", False)
    properties.setdefault("isArchived", False)
    properties.setdefault("tags", {})
    properties.setdefault("properties", {})
    count_version(service, path)
    match = SCOPE.match(path)
    if match and match["kind"] == "workspaces":
        name, version = path.rsplit("/", 3)[-3], path.rsplit("/", 1)[-1]
        service.events.publish(events.model_registered(match["where"], name, version, properties["tags"]))
    return None


def next_version(service: LocalAzureML, scope: str, name: str) -> str:
    container = service.resources.get(f"{scope}/models/{name}".lower())
    return str(container["properties"]["nextVersion"]) if container else "1"


def model_uri(scope: str, name: str, version: str) -> str:
    """Where a model version registered by the service itself keeps its files."""
    match = SCOPE.match(f"{scope}/models/")
    if match is None:
        raise ValueError(f"{scope!r} is not a workspace or registry id")
    if match["kind"] == "registries":
        return f"https://{ACCOUNT}.blob.{STORAGE_SUFFIX}/{registry_container(match['where'])}/models/{name}/{version}"
    return f"azureml://{scope.lstrip('/')}/datastores/{DEFAULT_DATASTORE}/paths/models/{name}/{version}/"


def register_version(
    service: LocalAzureML, scope: str, name: str, files: dict[str, bytes], *,
    tags: dict[str, str] | None = None, properties: dict[str, str] | None = None, job_name: str | None = None,
) -> dict[str, Any]:
    """Register the next version of `name` in a workspace or registry (ARM id) with these files.

    What a job's registered output or a person's upload ends as: files in the datastore,
    a version resource, and in a workspace the ModelRegistered event.
    """
    if service.storage is None:
        raise RuntimeError("the local service has no storage account to keep model files in")
    with service.lock:
        version = next_version(service, scope, name)
        match = SCOPE.match(f"{scope}/models/")
        assert match is not None, scope
        container_name = (
            registry_container(match["where"]) if match["kind"] == "registries" else workspace_container(match["where"])
        )
        container = service.storage.get_container_client(container_name)
        if not container.exists():
            container.create_container()
        for relative, data in files.items():
            container.upload_blob(f"models/{name}/{version}/{relative}", data, overwrite=True)
        body: dict[str, Any] = {
            "properties": {
                "description": "", "tags": dict(tags or {}), "properties": dict(properties or {}),
                "modelType": "custom_model", "modelUri": model_uri(scope, name, version),
                "isAnonymous": False, "isArchived": False, "flavors": {}, "stage": "Development",
            }
        }
        if job_name:
            body["properties"]["jobName"] = job_name
        path = f"{scope}/models/{name}/versions/{version}"
        resource = service.resource(path, body)
        put_version(service, path, resource, None)
        if match["kind"] == "registries":
            registries.as_registry_answers(resource)  # no stage, no provisioningState: the registry's shape
        else:
            resource["properties"]["provisioningState"] = "Succeeded"
        service.resources[path.lower()] = resource
        return resource
