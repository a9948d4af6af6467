"""Registries: discovery, import of a workspace model version, and datarefs (where files are)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply, arm_error
from localaml.service import REGISTRY_RESOURCE_GROUP, SUBSCRIPTION

if TYPE_CHECKING:
    from localaml.service import LocalAzureML


def install(service: LocalAzureML) -> None:
    service.route("GET", r"^/registrymanagement/v1\.0/registries/(?P<registry>[^/]+)/discovery$",
                  lambda **kw: discovery(service, **kw))
    service.route("POST", r"^/mferp/managementfrontend(?P<reg>/subscriptions/.+/registries/[^/]+)/import$",
                  lambda **kw: import_(service, **kw))
    service.route("POST", r"^/mferp/managementfrontend/subscriptions/.+/registries/[^/]+"
                  r"/datarefs/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", lambda **kw: dataref(service, **kw))


def discovery(
    service: LocalAzureML, registry: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    key = service.registry_id(registry).lower()
    if key not in service.resources:
        return arm_error(404, "RegistryNotFound", f"Registry {registry} not found.")
    return Reply(
        200,
        {
            "registryName": registry,
            "primaryRegion": "eastus",
            "regions": ["eastus"],
            "subscriptionId": SUBSCRIPTION,
            "resourceGroup": REGISTRY_RESOURCE_GROUP,
            "primaryRegionResourceProviderUri": service.base_url,
            "registryFqdns": {"eastus": {"primary": service.base_url}},
        },
    )

def import_(
    service: LocalAzureML, reg: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    request = body["properties"]
    name, version = request["destinationName"], request["destinationVersion"]
    service.add(f"{reg}/models/{name}", {"description": "", "tags": {}, "properties": {}, "latestVersion": version})
    service.add(
        f"{reg}/models/{name}/versions/{version}",
        {"description": "", "tags": {}, "properties": {}, "flavors": {}, "modelType": "custom_model",
         "modelUri": request["sourceAssetId"], "isAnonymous": False, "isArchived": False,
         "provisioningState": "Succeeded"},
    )
    location = f"{service.base_url}operationResults/{uuid.uuid4().hex}"
    return Reply(202, None, {"Location": location, "Retry-After": "0"})

def dataref(
    service: LocalAzureML, name: str, version: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """Where a registry asset's files are: a SAS URL of their container."""
    sas = service.blob_sas.get((name, version))
    if sas is None:
        return arm_error(404, "ResourceNotFound", f"no blob reference for {name}:{version}")
    return Reply(
        200,
        {"blobReferenceForConsumption": {"blobUri": body["blobUri"], "storageAccountArmId": None,
                                         "credential": {"credentialType": "SAS", "sasUri": sas}}},
    )

