"""Contract-test fixtures: the real `azure-ai-ml` client against the local Azure ML service over HTTPS.

The service takes the tokens of the local Entra ID stand-in, which the app gets as it does
locally: azure-identity's ClientSecretCredential as the function app's service principal.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from devhost.entra import LocalEntraStack, running_local_entra
from localaml import endpoints
from localaml.credential import EntraTokens
from localaml.server import serving
from localaml.service import LocalAzureML
from localaml.tls import Certificates, make_certificates
from shared.adapters.azureml import AzureMLPlatform, Cloud
from shared.adapters.azureml.clients import Clients
from shared.adapters.azureml.localservice import RESOURCE_MANAGER_AUDIENCE
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


# The local Entra ID whose tokens each service takes, for the tests that call a service by hand.
ENTRA: weakref.WeakKeyDictionary[LocalAzureML, LocalEntraStack] = weakref.WeakKeyDictionary()
RESOURCE_MANAGER = "https://management.azure.com"


def taking_tokens_of(service: LocalAzureML, entra: LocalEntraStack) -> LocalAzureML:
    """`service`, set to take the tokens of `entra` (its CA trusted), as `running_local_azureml` sets it."""
    service.entra = EntraTokens(entra.base_url, str(entra.ca_file))
    ENTRA[service] = entra
    return service


def bearer(service: LocalAzureML, resource: str = RESOURCE_MANAGER) -> dict[str, str]:
    """An Authorization header with the app's own token for `resource`, from the Entra ID `service` takes."""
    return {"Authorization": f"Bearer {ENTRA[service].app_token(resource.rstrip('/') + '/.default')}"}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def entra(certificates: Certificates) -> Iterator[LocalEntraStack]:
    """The local Entra ID stand-in, served with the same certificate as the service."""
    with running_local_entra(certificates) as running:
        yield running


@pytest.fixture(scope="module")
def service(certificates: Certificates, entra: LocalEntraStack) -> Iterator[LocalAzureML]:
    """The local service, served on loopback TLS, trusted through REQUESTS_CA_BUNDLE for this module."""
    local = taking_tokens_of(LocalAzureML(token_secret="contract-tests"), entra)
    with pytest.MonkeyPatch.context() as patch, serving(local, certificates) as fake:
        patch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca_file))
        # MLClient records the cloud it was last given in this variable; put it back afterwards.
        patch.setenv("AZUREML_CURRENT_CLOUD", os.environ.get("AZUREML_CURRENT_CLOUD", "AzureCloud"))
        yield fake


@pytest.fixture
def fake(service: LocalAzureML) -> LocalAzureML:
    """The service with fresh state: workspaces dev and prod and the registry `mlops-registry`."""
    service.resources.clear()
    service.requests.clear()
    service.faults.clear()
    service.runs.clear()
    service.monitor_series.clear()
    service.__dict__.pop("request_log", None)
    endpoints.online(service).reset()
    service.add_workspace("dev")
    service.add_workspace("prod")
    service.add(service.registry_id("mlops-registry"), {"discoveryUrl": service.base_url}, location="eastus")
    return service


@pytest.fixture
def cloud(service: LocalAzureML, entra: LocalEntraStack) -> Cloud:
    base = service.base_url
    return Cloud.from_metadata(
        f"AmlReactorFake{base.rsplit(':', 1)[1].strip('/')}",
        {
            "resource_manager": base,
            "registry_discovery_endpoint": base,
            "active_directory": entra.base_url,
            "aml_resource_id": "https://ml.azure.com/",
            "azure_portal": "https://portal.azure.com/",
            "storage_endpoint": "core.windows.net",
        },
        audience=RESOURCE_MANAGER_AUDIENCE,
    )


@pytest.fixture
def platform_settings(fake: LocalAzureML, entra: LocalEntraStack) -> Settings:
    """The app's settings for the service: its workspaces and registry, and its identity in the local Entra ID."""
    return Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "MLOPS_WORKSPACES": f"dev={fake.workspace_id('dev')},prod={fake.workspace_id('prod')}",
            "MLOPS_REGISTRY": "mlops-registry",
            **entra.app_settings(),
        }
    )


@pytest.fixture
def credential(platform_settings: Settings, cloud: Cloud) -> TokenCredential:
    """The app's credential as the app makes it: its service principal, asking Resource Manager's audience."""
    return Clients(platform_settings, cloud=cloud).credential


@pytest.fixture
def platform(platform_settings: Settings, cloud: Cloud) -> AzureMLPlatform:
    return AzureMLPlatform(platform_settings, cloud=cloud)
