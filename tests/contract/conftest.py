"""Contract-test fixtures: the real `azure-ai-ml` client against the local Azure ML service over HTTPS."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from localaml import endpoints
from localaml.server import serving
from localaml.service import LocalAzureML
from localaml.tls import Certificates, make_certificates
from shared.adapters.azureml import AzureMLPlatform, Cloud
from shared.adapters.azureml.localservice import LocalServiceCredential
from shared.settings import Settings


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def service(certificates: Certificates) -> Iterator[LocalAzureML]:
    """The local service, served on loopback TLS, trusted through REQUESTS_CA_BUNDLE for this module."""
    local = LocalAzureML(token_secret="contract-tests")
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
def cloud(service: LocalAzureML) -> Cloud:
    base = service.base_url
    return Cloud.from_metadata(
        f"AmlReactorFake{base.rsplit(':', 1)[1].strip('/')}",
        {
            "resource_manager": base,
            "registry_discovery_endpoint": base,
            "active_directory": base,
            "aml_resource_id": "https://ml.azure.com/",
            "azure_portal": "https://portal.azure.com/",
            "storage_endpoint": "core.windows.net",
        },
    )


@pytest.fixture
def credential(service: LocalAzureML) -> LocalServiceCredential:
    return LocalServiceCredential(service.token_secret)


@pytest.fixture
def platform(fake: LocalAzureML, cloud: Cloud, credential: LocalServiceCredential) -> AzureMLPlatform:
    settings = Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "MLOPS_WORKSPACES": f"dev={fake.workspace_id('dev')},prod={fake.workspace_id('prod')}",
            "MLOPS_REGISTRY": "mlops-registry",
        }
    )
    return AzureMLPlatform(settings, credential=credential, cloud=cloud)
