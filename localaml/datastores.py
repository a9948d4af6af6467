"""Datastores: where a workspace's or registry's files are, in the service's storage account.

Each workspace has its default datastore `workspaceblobstore`, a blob container
`azureml-blobstore-<workspace id>` of the storage account, as Azure ML makes it. The SDK
reads the datastore (`GET .../datastores/workspaceblobstore`) and its key
(`POST .../listSecrets`), then talks to `https://<account>.blob.<storage suffix>` itself
(REST spec examples `Datastore/get.json`, `Datastore/listSecrets.json`). Registries keep
their assets in a container `azureml-registry-<registry>`, reached through SAS URLs that
the registry hands out (datarefs).

A workspace may use identity-based access to its storage account instead of the account key
(`identity_based`): the workspace answers `"systemDatastoresAuthMode": "identity"` (recorded in a 2025
workspace GET: Azure/azure-sdk-assets, python/sdk/ml/azure-ai-ml/tests/recordings/online_services/e2etests/
test_online_deployment.pyTestOnlineDeploymenttest_online_deployment_update.json; the property and its values
`identity` / `accesskey`: MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-disable-local-auth-storage.md),
its default datastore stores no credentials (`credentialsType: None`, `serviceDataAccessAuthIdentity:
WorkspaceSystemAssignedIdentity`, as Azure/bicep-types-az#2468 shows such a datastore), and a key is not handed
out: `listSecrets` is refused. azure-ai-ml then reads and writes the files with the caller's own token
(`get_datastore_info`: "Identity-based datastore detected. Skipping _list_secrets call"), which needs a Storage
Blob Data role on the storage account (same docs page: Storage Blob Data Reader to read, Contributor to write).
The status and body of that refusal are this service's: no public source shows Azure's.
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
AUTH_MODE = "systemDatastoresAuthMode"  # a workspace's property: `identity` or `accesskey`
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


def identity_based(service: LocalAzureML, workspace: str, *, identity: bool = True) -> None:
    """Switch a workspace to identity-based access to its storage account (see the module docstring), or back
    to the account key (`accesskey`, the docs' value to revert)."""
    with service.lock:
        properties = service.resources[service.workspace_id(workspace).lower()]["properties"]
        properties[AUTH_MODE] = "identity" if identity else "accesskey"
        datastore = service.resources[f"{service.workspace_id(workspace)}/datastores/{DEFAULT_DATASTORE}".lower()]
        datastore["properties"].update(
            credentials={"credentialsType": "None" if identity else "AccountKey"},
            serviceDataAccessAuthIdentity="WorkspaceSystemAssignedIdentity" if identity else "None")


def list_secrets(
    service: LocalAzureML, workspace: str, name: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """The datastore's account key (REST spec example `Datastore/listSecrets.json`); none for a datastore that
    stores no credentials (identity-based access)."""
    datastore = service.resources.get(f"{workspace}/datastores/{name}".lower())
    if datastore is None:
        raise AzureError(404, "UserError", f"Datastore {name} was not found.")
    if (datastore["properties"].get("credentials") or {}).get("credentialsType") == "None":
        raise user_error(
            f"Datastore {name} uses identity-based access and stores no secrets: read its files with your own "
            "identity (a Storage Blob Data role on the storage account).", "NoSecrets")
    return Reply(200, {"secretsType": "AccountKey", "key": ACCOUNT_KEY})
