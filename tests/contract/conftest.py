"""Contract-test fixtures: the real `azure-ai-ml` client against the fake service over HTTPS."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator

import pytest
from azure.core.credentials import AccessToken

from shared.platform.azureml import AzureMLPlatform, Cloud
from shared.settings import Settings
from tests.contract.fake_service import FakeAzureML, serving
from tests.contract.tls import TestCertificates, make_certificates


def _unsigned_jwt(claims: dict[str, object]) -> str:
    """The SDK reads claims from its token (never checks the signature), so the token is JWT-shaped."""

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"


CLAIMS = {
    "oid": "11111111-1111-1111-1111-111111111111",
    "tid": "22222222-2222-2222-2222-222222222222",
    "upn": "app@example.com",
    "exp": 4102444800,
}


class FakeCredential:
    """A test double for auth only: a fixed JWT-shaped token per scope; the scopes asked for are kept."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        # Real tokens carry their audience; the SDK checks it before submitting a pipeline job.
        audience = scopes[0].removesuffix("/.default")
        return AccessToken(_unsigned_jwt({**CLAIMS, "aud": audience}), int(time.time()) + 3600)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def service(certificates: TestCertificates) -> Iterator[FakeAzureML]:
    """The fake, served on loopback TLS, trusted through REQUESTS_CA_BUNDLE for this module."""
    with pytest.MonkeyPatch.context() as patch, serving(FakeAzureML(), certificates) as fake:
        patch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca_file))
        # MLClient records the cloud it was last given in this variable; put it back afterwards.
        patch.setenv("AZUREML_CURRENT_CLOUD", os.environ.get("AZUREML_CURRENT_CLOUD", "AzureCloud"))
        yield fake


@pytest.fixture
def fake(service: FakeAzureML) -> FakeAzureML:
    """The fake with fresh state: workspaces dev and prod and the registry `mlops-registry`."""
    service.resources.clear()
    service.requests.clear()
    service.faults.clear()
    service.runs.clear()
    service.monitor_series.clear()
    service.add_workspace("dev")
    service.add_workspace("prod")
    service.add(service.registry_id("mlops-registry"), {"discoveryUrl": service.base_url}, location="eastus")
    return service


@pytest.fixture
def cloud(service: FakeAzureML) -> Cloud:
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
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def platform(fake: FakeAzureML, cloud: Cloud, credential: FakeCredential) -> AzureMLPlatform:
    settings = Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "MLOPS_PLATFORM": "azureml",
            "MLOPS_WORKSPACES": f"dev={fake.workspace_id('dev')},prod={fake.workspace_id('prod')}",
            "MLOPS_REGISTRY": "mlops-registry",
        }
    )
    return AzureMLPlatform(settings, credential=credential, cloud=cloud)
