"""Datastores: where a workspace's or registry's files are, in the service's storage account.

Each workspace has its default datastore `workspaceblobstore`, a blob container
`azureml-blobstore-<workspace id>` of the storage account, as Azure ML makes it. The SDK
reads the datastore (`GET .../datastores/workspaceblobstore`) and its key
(`POST .../listSecrets`), then talks to `https://<account>.blob.<storage suffix>` itself
(REST spec examples `Datastore/get.json`, `Datastore/listSecrets.json`). Registries keep
their assets in a container `azureml-registry-<registry>`, reached through SAS URLs that
the registry hands out (datarefs).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from localaml.errors import AzureError, Reply, user_error

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

# The storage account is an Azurite with its well-known development account: the name and key Azurite
# accepts unless told otherwise (learn.microsoft.com/azure/storage/common/storage-connect-azurite, "Use the
# well-known storage account and key"). Not a secret: Azurite ships it and it opens only local emulators.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Account URLs are https://<account>.blob.core.localaml.test (see proxy.py); the storage SDK finds the
# account name in a host name by its ".blob.core." part, as in every Azure cloud's suffix.
STORAGE_SUFFIX = "core.localaml.test"
DEFAULT_DATASTORE = "workspaceblobstore"
# azureml://subscriptions/<s>/resourcegroups/<rg>/workspaces/<ws>/datastores/<ds>/paths/<path>, or the
# workspace-relative short form azureml://datastores/<ds>/paths/<path>.
DATASTORE_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/Microsoft\.MachineLearningServices/)?"
    r"workspaces/(?P<workspace>[^/]+)/)?datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$"
)


@dataclass(frozen=True)
class Location:
    """Files in the storage account: a container and a blob-name prefix."""

    container: str
    prefix: str


def workspace_container(workspace: str) -> str:
    return f"azureml-blobstore-{uuid.uuid5(uuid.NAMESPACE_URL, workspace)}"


def registry_container(registry: str) -> str:
    return f"azureml-registry-{registry.lower()}"


def locate(uri: str, workspace: str) -> Location:
    """Where a datastore URI's files are; `workspace` is the one short-form URIs are relative to."""
    match = DATASTORE_URI.match(uri)
    if match is None:
        raise user_error(f"{uri!r} is not a datastore URI (azureml://datastores/<name>/paths/<path>)", "InvalidUri")
    if match["datastore"] != DEFAULT_DATASTORE:
        raise AzureError(404, "UserError", f"Datastore {match['datastore']} was not found.")
    return Location(workspace_container(match["workspace"] or workspace), match["path"])


def read_files(service: LocalAzureML, location: Location) -> dict[str, bytes]:
    """Every blob under the location, by its name relative to the prefix (a file location gives one)."""
    if service.storage is None:
        raise AzureError(500, "InternalServerError", "the local service has no storage account")
    container = service.storage.get_container_client(location.container)
    names = [blob.name for blob in container.list_blobs(name_starts_with=location.prefix)]
    files = {}
    for name in names:
        relative = name[len(location.prefix):].lstrip("/") or name.rsplit("/", 1)[-1]
        files[relative] = container.download_blob(name).readall()
    return files


def install(service: LocalAzureML) -> None:
    service.route(
        "POST", r"^(?P<workspace>/subscriptions/.+/workspaces/[^/]+)/datastores/(?P<name>[^/]+)/listSecrets$",
        lambda **kw: list_secrets(service, **kw),
    )


def datastore_resource(service: LocalAzureML, workspace: str) -> dict[str, Any]:
    """The default datastore of a workspace, as `GET .../datastores/workspaceblobstore` answers."""
    from localaml.service import RESOURCE_GROUP, SUBSCRIPTION

    return service.resource(
        f"{service.workspace_id(workspace)}/datastores/{DEFAULT_DATASTORE}",
        {
            "properties": {
                "datastoreType": "AzureBlob",
                "subscriptionId": SUBSCRIPTION,
                "resourceGroup": RESOURCE_GROUP,
                "accountName": ACCOUNT,
                "containerName": workspace_container(workspace),
                "endpoint": STORAGE_SUFFIX,
                "protocol": "https",
                "credentials": {"credentialsType": "AccountKey"},
                "isDefault": True,
                "serviceDataAccessAuthIdentity": "None",
                "description": "",
                "properties": {},
                "tags": {},
            }
        },
    )


def add_datastore(service: LocalAzureML, workspace: str) -> None:
    """Give a workspace its default datastore and make its container."""
    resource = datastore_resource(service, workspace)
    service.resources[resource["id"].lower()] = resource
    if service.storage is not None:
        container = service.storage.get_container_client(workspace_container(workspace))
        if not container.exists():
            container.create_container()


def list_secrets(
    service: LocalAzureML, workspace: str, name: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """The datastore's account key (REST spec example `Datastore/listSecrets.json`)."""
    if f"{workspace}/datastores/{name}".lower() not in service.resources:
        raise AzureError(404, "UserError", f"Datastore {name} was not found.")
    return Reply(200, {"secretsType": "AccountKey", "key": ACCOUNT_KEY})
