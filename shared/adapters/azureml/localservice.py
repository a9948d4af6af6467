"""How the app reaches the local Azure ML service (`localaml/`) instead of Azure, for local runs.

Three settings point the adapter elsewhere: `MLOPS_AZUREML_ENDPOINT` (the service's base
URL, in place of Resource Manager and registry discovery), `MLOPS_AZUREML_STORAGE_SUFFIX`
(storage accounts are `https://<account>.blob.<suffix>`) and `MLOPS_AZUREML_LOCAL_TOKEN`,
the service's secret. The credential then is a fixed token that only that service
accepts, and only toward a loopback address: the app never sends it anywhere else. TLS is
trusted through the usual CA-bundle setting (REQUESTS_CA_BUNDLE), storage host names are
reached through the standard proxy settings (HTTPS_PROXY / NO_PROXY).

The token is JWT-shaped because azure-ai-ml reads claims from its token (never its
signature) and checks the audience before it submits a pipeline job; in place of a
signature it carries the secret, which the service checks on every request.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken

if TYPE_CHECKING:
    from shared.adapters.azureml.clients import Cloud
    from shared.settings import Settings

CLAIMS = {
    "oid": "11111111-1111-1111-1111-111111111111",
    "tid": "22222222-2222-2222-2222-222222222222",
    "upn": "app@localaml.test",
    "name": "aml-reactor (local)",
    "exp": 4102444800,
}


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _part(value: dict[str, object]) -> str:
    return _encode(json.dumps(value).encode())


def local_token(secret: str, audience: str, claims: dict[str, object] | None = None) -> str:
    """A JWT-shaped token for `audience` that carries `secret` in place of a signature."""
    header, body = _part({"alg": "none", "typ": "JWT"}), _part({**CLAIMS, **(claims or {}), "aud": audience})
    return f"{header}.{body}.{_encode(secret.encode())}"


class LocalServiceCredential:
    """A TokenCredential giving the local service's token for any scope; the scopes asked for are kept."""

    def __init__(self, secret: str, claims: dict[str, object] | None = None) -> None:
        self.secret = secret
        self.claims = claims or {}
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        return AccessToken(local_token(self.secret, audience, self.claims), int(time.time()) + 3600)


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
            "active_directory": base,
            "aml_resource_id": "https://ml.azure.com/",
            "azure_portal": "https://portal.azure.com/",
            "storage_endpoint": settings.azureml_storage_suffix or "core.windows.net",
        },
    )


def configured_credential(settings: Settings) -> LocalServiceCredential | None:
    """The local service's credential when the settings give its token, else None (managed identity)."""
    return LocalServiceCredential(settings.azureml_local_token) if settings.azureml_local_token else None
