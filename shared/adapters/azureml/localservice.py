"""How the app reaches the local Azure ML service (`localaml/`) instead of Azure, for local runs.

Two settings point the adapter elsewhere: `MLOPS_AZUREML_ENDPOINT` (the service's base URL,
https on loopback, in place of Resource Manager and registry discovery) and
`MLOPS_AZUREML_STORAGE_SUFFIX` (storage accounts are `https://<account>.blob.<suffix>`). TLS
is trusted through the usual CA-bundle setting (REQUESTS_CA_BUNDLE), storage host names are
reached through the standard proxy settings (HTTPS_PROXY / NO_PROXY).

Who the app is stays Entra ID's business, as in Azure: locally a service principal with a
client secret (`AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
`AZURE_AUTHORITY_HOST`: the local Entra ID stand-in; see `clients.default_credential`) whose
Resource Manager tokens the service checks as Azure does. The local cloud's Resource Manager
is the service's URL while its tokens' audience stays Resource Manager's
(`https://management.azure.com/`): `clients.ResourceManagerAudience` asks for that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from shared.adapters.azureml.clients import Cloud
    from shared.settings import Settings

RESOURCE_MANAGER_AUDIENCE = "https://management.azure.com/"


def configured_cloud(settings: Settings) -> Cloud | None:
    """The cloud the settings point at instead of Azure's public one, None for Azure's."""
    from shared.adapters.azureml.clients import Cloud

    if not settings.azureml_endpoint:
        return None
    base = settings.azureml_endpoint.rstrip("/") + "/"
    port = urlsplit(base).port or 443
    return Cloud.from_metadata(
        f"AmlReactorLocal{port}",
        {
            "resource_manager": base,
            "registry_discovery_endpoint": base,
            "active_directory": settings.azure_authority_host or "https://login.microsoftonline.com",
            "aml_resource_id": "https://ml.azure.com/",
            "azure_portal": "https://portal.azure.com/",
            "storage_endpoint": settings.azureml_storage_suffix or "core.windows.net",
        },
        audience=RESOURCE_MANAGER_AUDIENCE,
    )


def local_job_page(endpoint: str, workspace_name: str, job_name: str) -> str:
    """The local Azure ML service's own page of a job (status, error, each step's log): what a job's
    Studio link is locally, where Azure ML studio cannot show it (localaml/runhistory.py)."""
    return f"{endpoint.rstrip('/')}/localaml/jobs/{workspace_name}/{job_name}"
