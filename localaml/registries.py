"""Registries: discovery, import of a workspace model version, a version's PUT (its tags), where an asset's
files are.

- Discovery answers as the SDK's recordings show (Azure/azure-sdk-assets,
  python/sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/
  test_model.pyTestModeltest_create_get_download_model_registry.json).
- Import (sharing a workspace asset) is a long-running operation. The generated client of the registry data
  plane (Azure/azure-sdk-for-python, sdk/ml/azure-ai-ml/azure/ai/ml/_restclient/v2021_10_01_dataplanepreview/
  operations/_resource_management_asset_reference_operations.py, `begin_import_method`) takes 200 or 202, reads
  `Location` and `Retry-After` from a 202 and polls with `final-state-via: location`; the Azure ML docs ("Manage
  models with deployment templates", step 2 "Share the environment to a registry") name an `Azure-AsyncOperation`
  header to poll. The sources disagree, so the answer carries both: azure-core polls the operation status and, the
  request being a POST, ends on a GET of `Location`, as the generated client does. That GET answers 202 while the
  copy runs, then 204 with no body (ARM's asynchronous operation contract, as `service._operation_result`), so the
  SDK's final result is empty and azure-ai-ml takes its normal path (`if not result: self._get(...)` in
  `ModelOperations.create_or_update`). No public recording shows the body Azure gives there.
  "If the destination resource exists, it will be overwritten" (same generated client): an import onto an
  existing registry version replaces it. azure-ai-ml itself refuses to send one ("A model with this name and
  version already exists in registry", `ModelOperations.create_or_update`), so only other clients reach it.
  The model's files are copied into the registry's container.
- Temporary data references (`tempdatarefs`) hand out a SAS URL of the registry's container to
  upload a new asset's files (shape from the recording above); for an asset that exists already
  Azure answers 409 "Asset already exists" (azure-ai-ml `_utils/_registry_utils.py`,
  `get_sas_uri_for_registry_asset`, which skips the upload on it).
- Data references (`datarefs`, REST `RegistryDataReferences_GetBlobReferenceSAS`, spec example
  Azure/azure-rest-api-specs .../stable/2025-12-01/examples/DataReference/getBlobReferenceSAS.json)
  say where an asset's files are: a read SAS URL of its container on the service's storage account.
- A registry model version is created or updated by a PUT (REST `RegistryModelVersions_CreateOrUpdate`,
  a long-running operation). On the registry's front end, where azure-ai-ml sends it, Azure answers 202
  with no body, `Location` (an asset store operation) and `x-ms-async-operation-timeout: PT1H`; the
  operation answers 202 while it runs, then 200 with the `assetId` (recorded: the version PUT of
  test_create_get_download_model_registry.json). On ARM, Azure/azure-rest-api-specs .../stable/2025-12-01/
  examples/Registry/ModelVersion/createOrUpdate.json answers 200 or 201, and the REST reference "Registry
  Model Versions - Create Or Update" gives the 201 an `Azure-AsyncOperation` header.
- The import takes no tags (its body is only the source reference: azure-ai-ml
  `WorkspaceAssetReference._to_rest_object`), so tags reach the registry's copy by that PUT (azure-ai-ml
  `models.create_or_update` with a registry client). Once a version exists only some fields change: "Only
  tags, description, and isArchived can be updated" is the service's own message (`ASSET_PATH_ERROR`,
  azure-ai-ml `constants/_common.py`), `stage` too (recorded: test_crud_model_with_stage.json). A changed
  modelUri is refused with that message (localaml/models.py); a changed property dictionary, flavors,
  model type or job is refused here with a message naming the field: the rule is Azure's, the status and
  body are this service's (no public recording shows Azure refusing them).
- A registry model version is answered in the registry's own shape, not ARM's (recorded: the version GETs of
  test_create_get_download_model_registry.json): `type` is `models`, `name` the model's name, the id
  `azureml://registries/<registry in lower case>/models/<name>/versions/<version>`, and its properties are
  description, tags, properties, isArchived, isAnonymous, flavors, modelType, modelUri, originAssetId, jobName
  and intellectualProperty, with no stage and no provisioningState. originAssetId stays null on a copy an import
  made: no public source shows Azure setting it there.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from localaml.credential import TENANT
from localaml.datastores import ACCOUNT, ACCOUNT_KEY, STORAGE_SUFFIX, locate, read_files, registry_container
from localaml.errors import AzureError, Reply, arm_error, user_error
from localaml.service import REGISTRY_RESOURCE_GROUP, SUBSCRIPTION

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from localaml.service import LocalAzureML

REGISTRY_PATH = r"^/mferp/managementfrontend(?P<reg>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/" \
    r"Microsoft\.MachineLearningServices/registries/(?P<registry>[^/]+))"
# azureml://locations/<location>/workspaces/<workspace guid>/models/<name>/versions/<version> (ASSET_ID_FORMAT)
SOURCE_ASSET = re.compile(
    r"^azureml://locations/[^/]+/workspaces/(?P<guid>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$"
)
# A registry model version, on the registry's front end (as azure-ai-ml calls it) or on ARM (the REST reference).
REGISTRY_MODEL_VERSION = r"^(?P<front>/mferp/managementfrontend)?(?P<reg>/subscriptions/[^/]+/resourceGroups/[^/]+/" \
    r"providers/Microsoft\.MachineLearningServices/registries/(?P<registry>[^/]+))" \
    r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$"
# What an existing version keeps: the fields besides tags, description, stage and isArchived that a PUT carries.
IMMUTABLE = ("properties", "flavors", "modelType", "jobName")
WORKSPACE_KEY = re.compile(r"/workspaces/[^/]+$")
STORAGE_ACCOUNT_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}"
                      f"/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}")
# Seconds the import's 202 asks a client to wait between polls: the generated client reads the header as an int;
# no public source shows Azure's value, and the local copy is done before the answer goes.
IMPORT_RETRY_AFTER = "0"
SAS_LIFETIME = timedelta(hours=8)  # the recorded SAS URLs run for eight hours (st .. se)
# A registry model version's properties as the registry answers them, in the recorded order (see the docstring).
VERSION_PROPERTIES = ("description", "tags", "properties", "isArchived", "isAnonymous", "flavors", "modelType",
                      "modelUri", "originAssetId", "jobName", "intellectualProperty")
ANSWERED_NULL = ("originAssetId", "jobName", "intellectualProperty")  # recorded as null when nothing set them
VERSION_ID = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/versions/[^/]+$")


def install(service: LocalAzureML) -> None:
    service.route("GET", r"^/registrymanagement/v1\.0/registries/(?P<registry>[^/]+)/discovery$",
                  lambda **kw: discovery(service, **kw))
    service.route("POST", REGISTRY_PATH + r"/import$", lambda **kw: import_(service, **kw))
    service.route("PUT", REGISTRY_PATH + r"/tempdatarefs/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
                  lambda **kw: temporary_reference(service, **kw))
    service.route("POST", REGISTRY_PATH + r"/datarefs/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
                  lambda **kw: dataref(service, **kw))
    service.route("PUT", REGISTRY_MODEL_VERSION, lambda **kw: put_model_version(service, **kw))
    service.route("GET", r"^/assetstore/v1\.0/operations/(?P<op>[^/]+)$", lambda **kw: asset_operation(service, **kw))


def discovery(
    service: LocalAzureML, registry: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    key = service.registry_id(registry).lower()
    if key not in service.resources:
        return arm_error(404, "RegistryNotFound", f"Registry {registry} not found.")
    return Reply(
        200,
        {
            "registryId": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
            "registryName": registry,
            "tenantId": TENANT,
            "primaryRegion": "eastus",
            "regions": ["eastus"],
            "subscriptionId": SUBSCRIPTION,
            "resourceGroup": REGISTRY_RESOURCE_GROUP,
            "workspaceName": None,
            "primaryRegionResourceProviderUri": service.base_url,
            "registryFqdns": {"eastus": {"uri": service.base_url.rstrip("/")}},
            "intellectualPropertyPublisher": None,
        },
    )


def import_(
    service: LocalAzureML, reg: str, registry: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """Copy a workspace model version (and its files) into the registry, over any version of that name.

    202 with `Location` and `Retry-After` (the generated client) and `Azure-AsyncOperation` (the docs).
    """
    request = body["properties"]
    name, version = request["destinationName"], request["destinationVersion"]
    source = _source_model(service, request["sourceAssetId"])
    target = f"{reg}/models/{name}/versions/{version}"
    overwritten = target.lower() in service.resources
    uri = _copy_files(service, source, registry, name, version)
    if not overwritten:
        service.add(f"{reg}/models/{name}", {"description": "", "tags": {}, "properties": {}, "latestVersion": version})
    properties = source["properties"]
    service.add(
        target,
        {"description": properties.get("description", ""), "tags": dict(properties.get("tags") or {}),
         "properties": dict(properties.get("properties") or {}), "flavors": properties.get("flavors") or {},
         "modelType": properties.get("modelType", "custom_model"), "modelUri": uri, "isAnonymous": False,
         "isArchived": False, "provisioningState": "Succeeded"},
    )
    operation = service.start_operation(target)
    return Reply(202, None, {"Azure-AsyncOperation": f"{service.base_url}operations/{operation.id}",
                             "Location": f"{service.base_url}operationResults/{operation.id}",
                             "Retry-After": IMPORT_RETRY_AFTER})


def temporary_reference(
    service: LocalAzureML, reg: str, registry: str, name: str, version: str, query: dict[str, str], body: Any,
    headers: dict[str, str],
) -> Reply:
    """Where to upload a new registry model's files: a SAS URL of the registry's container (read, write, list)."""
    if f"{reg}/models/{name}/versions/{version}".lower() in service.resources:
        raise user_error("Asset already exists", "AssetExists", status=409)
    container = registry_container(registry)
    _ensure_container(service, container)
    return Reply(
        200,
        # The container by the account's host name, as recorded (`https://<account>.blob.<suffix>/<container>`):
        # azure-ai-ml makes the new version's path from it and, downloading, reads the container from that path's
        # first segment. Only the SAS URL leads to the storage account itself.
        {"blobReferenceForConsumption": {"blobUri": f"https://{ACCOUNT}.blob.{STORAGE_SUFFIX}/{container}",
                                         "storageAccountArmId": STORAGE_ACCOUNT_ID,
                                         "credential": {"credentialType": "SAS",
                                                        "sasUri": _sas_url(service, container, write=True)}},
         "imageReferenceForConsumption": None, "temporaryDataReferenceId": str(uuid.uuid4()),
         "temporaryDataReferenceType": None},
    )


def dataref(
    service: LocalAzureML, reg: str, registry: str, name: str, version: str, query: dict[str, str], body: Any,
    headers: dict[str, str],
) -> Reply:
    """Where a registry asset's files are: a read SAS URL of their container."""
    sas = service.blob_sas.get((name, version))  # set by tests that bring their own container
    if sas is None:
        model = service.resources.get(f"{reg}/models/{name}/versions/{version}".lower())
        if model is None:
            return arm_error(404, "ResourceNotFound", f"no blob reference for {name}:{version}")
        container = registry_container(registry)
        if f"/{container}/" not in model["properties"].get("modelUri", "") + "/":
            return arm_error(404, "ResourceNotFound", f"no blob reference for {name}:{version}")
        sas = _sas_url(service, container, write=False)
    return Reply(
        200,
        {"blobReferenceForConsumption": {"blobUri": body["blobUri"], "storageAccountArmId": STORAGE_ACCOUNT_ID,
                                         "credential": {"credentialType": "SAS", "sasUri": sas}}},
    )


def put_model_version(
    service: LocalAzureML, front: str | None, reg: str, registry: str, name: str, version: str,
    query: dict[str, str], body: Any, headers: dict[str, str],
) -> Reply:
    """Create a registry model version or update what may change of an existing one.

    On the registry's front end (where azure-ai-ml sends it) the PUT is an asset store operation,
    as recorded (test_create_get_download_model_registry.json): 202, no body, `Location` to poll and
    `x-ms-async-operation-timeout: PT1H`. On ARM: 201 with `Azure-AsyncOperation` for a new version
    (REST reference), 200 for an update.
    """
    path = f"{reg}/models/{name}/versions/{version}"
    body = _by_host_name(service, body)
    existing = service.resources.get(path.lower())
    if existing is not None:
        _refuse_immutable_changes(existing["properties"], (body or {}).get("properties") or {}, name, version)
    answer = service._put(path, query, body, headers)
    if answer.status >= 400:
        return answer
    as_registry_answers(service.resources[path.lower()])  # the generic PUT added a provisioningState
    operation = service.start_operation(path)
    if front:
        return Reply(202, None, {"Location": f"{service.base_url}assetstore/v1.0/operations/{operation.id}",
                                 "x-ms-async-operation-timeout": "PT1H"})
    if existing is None:
        answer.headers = {**answer.headers, "Azure-AsyncOperation": service.operation_url(operation.id, query)}
    return answer


def asset_operation(service: LocalAzureML, op: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
    """An asset store operation: the asset it made, once done (recorded: 202 while it runs, then 200 `assetId`).
    The local service finishes the PUT before it answers, so the first poll finds it done."""
    operation = service.operations.get(op)
    match = re.search(r"/registries/([^/]+)/models/([^/]+)/versions/([^/]+)$", operation.resource if operation else "")
    if match is None:
        return arm_error(404, "NotFound", f"no asset store operation {op}")
    registry, name, version = match.groups()
    return Reply(200, {"assetId": f"azureml://registries/{registry.lower()}/models/{name}/versions/{version}"})


def as_registry_answers(resource: dict[str, Any]) -> dict[str, Any]:
    """Put a stored registry model version (changed in place, and returned) in the shape the registry answers.

    Fields a PUT or a copy carries that the registry does not answer (stage, provisioningState) are left
    out; fields it answers null when nothing set them are there as null.
    """
    match = VERSION_ID.match(resource["id"])
    if match is None:
        raise ValueError(f"{resource['id']!r} is not a registry model version id")
    registry = match["registry"]
    resource.update(id=resource["id"].replace(f"/registries/{registry}/", f"/registries/{registry.lower()}/", 1),
                    name=match["name"], type="models")
    properties = resource.get("properties") or {}
    resource["properties"] = {key: properties.get(key) for key in VERSION_PROPERTIES
                              if key in properties or key in ANSWERED_NULL}
    return resource


def _refuse_immutable_changes(stored: dict[str, Any], sent: dict[str, Any], name: str, version: str) -> None:
    """A field of an existing version other than tags, description, stage and isArchived may not change."""
    for field in IMMUTABLE:
        if field not in sent or sent[field] is None:
            continue  # left out: the stored value stays
        before, after = stored.get(field), sent[field]
        if field == "modelType":  # Azure names a type in either spelling (custom_model, CustomModel)
            before, after = str(before or "").replace("_", "").lower(), str(after).replace("_", "").lower()
        elif field == "properties":
            before, after = before or {}, after or {}
        if before != after:
            raise user_error(
                f"The {field} of model {name}:{version} cannot be changed once the version exists. Only tags, "
                "description, stage and isArchived can be updated.", "ImmutableField", target=field,
            )


def _source_model(service: LocalAzureML, asset_id: str) -> dict[str, Any]:
    match = SOURCE_ASSET.match(asset_id)
    if match is None:
        raise user_error(f"{asset_id!r} is not a workspace model asset id", "InvalidAssetId")
    for key, resource in service.resources.items():
        if WORKSPACE_KEY.search(key) and resource.get("properties", {}).get("workspaceId") == match["guid"]:
            found = service.resources.get(f"{key}/models/{match['name']}/versions/{match['version']}".lower())
            if found is not None:
                return found
    raise AzureError(404, "UserError", f"Asset {asset_id} was not found.")


def _copy_files(service: LocalAzureML, source: dict[str, Any], registry: str, name: str, version: str) -> str:
    """Copy the source model's files into the registry container; the registry model's URI."""
    container = registry_container(registry)
    prefix = f"models/{name}/{version}"
    client = _ensure_container(service, container)
    if client is not None:
        workspace = source["id"].split("/workspaces/", 1)[1].split("/", 1)[0]
        files = read_files(service, locate(source["properties"]["modelUri"], workspace))
        for stale in list(client.list_blobs(name_starts_with=f"{prefix}/")):  # an overwritten version's files
            client.delete_blob(stale.name)
        for relative, data in files.items():
            client.upload_blob(f"{prefix}/{relative}", data, overwrite=True)
    return f"https://{ACCOUNT}.blob.{STORAGE_SUFFIX}/{container}/{prefix}"


def _by_host_name(service: LocalAzureML, body: Any) -> Any:
    """The body with a modelUri on the service's storage account named by the account's host name.

    azure-ai-ml names an uploaded version by the URL of the SAS it uploaded with; the local storage account's
    is path-style (`https://127.0.0.1:<port>/<account>/<container>/...`, an Azurite), where Azure's is
    `https://<account>.blob.<suffix>/<container>/...`, and azure-ai-ml, downloading, takes the container from
    the path's first segment. The version keeps the name Azure would give it.
    """
    properties = (body or {}).get("properties") or {}
    uri = properties.get("modelUri")
    if service.storage is None or not isinstance(uri, str):
        return body
    base = service.storage.url.rstrip("/") + "/"
    if not uri.startswith(base):
        return body
    host = f"https://{ACCOUNT}.blob.{STORAGE_SUFFIX}/{uri[len(base):]}"
    return {**body, "properties": {**properties, "modelUri": host}}


def _ensure_container(service: LocalAzureML, container: str) -> ContainerClient | None:
    """The registry's container, made if it is not there yet: a SAS URL is only handed out for one that exists.

    Before, a tempdataref named a container no import had made yet; every upload to it failed with
    ContainerNotFound, and azure-ai-ml (1.35.2, `_utils/_asset_utils.upload_directory`) reads its upload
    threads' results only when it shows progress, so a folder's failed uploads left `BlobStorageClient.upload`
    waiting for ever for a count of uploaded files that never came (azure-ai-ml's own
    test_model.py::test_create_get_download_model_registry, re-expressed, hung there).
    """
    if service.storage is None:
        return None  # tests without files have no storage account
    client = service.storage.get_container_client(container)
    if not client.exists():
        client.create_container()
    return client


def _container_url(service: LocalAzureML, container: str) -> str:
    base = service.storage.url if service.storage is not None else f"https://{ACCOUNT}.blob.{STORAGE_SUFFIX}/"
    return f"{base.rstrip('/')}/{container}"


def _sas_url(service: LocalAzureML, container: str, *, write: bool) -> str:
    """A container SAS URL on the service's storage account (sp=rl to read, rcwl to upload, as recorded)."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    if service.storage is None:
        raise AzureError(500, "InternalServerError", "the local service has no storage account")
    credential = service.storage.credential
    sas = generate_container_sas(
        getattr(credential, "account_name", ACCOUNT), container,
        account_key=getattr(credential, "account_key", ACCOUNT_KEY),
        permission=ContainerSasPermissions(read=True, list=True, create=write, write=write),
        expiry=datetime.now(UTC) + SAS_LIFETIME,
    )
    return f"{_container_url(service, container)}?{sas}"
