"""Metadata documents: OpenID Connect discovery (v2.0 and v1.0), instance discovery, the signing keys.

- `/{tenant}/v2.0/.well-known/openid-configuration`, in the shape of Entra's (learn.microsoft.com/
  entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri;
  the document of `login.microsoftonline.com/common/v2.0/...` as kept in panva/wellknown
  `issuers/entra-common`). A tenant-specific document names the tenant's id in every endpoint
  and its issuer; under `organizations`/`common` the endpoints keep the alias and the issuer is
  the template `.../{tenantid}/v2.0`, as Entra's. There is no `userinfo_endpoint`: Entra's is
  Microsoft Graph's, which is not served.
- `/{tenant}/.well-known/openid-configuration`: the v1.0 document (issuer `{host}/{tenant}/`);
  only its issuer and keys are of use here, the v1.0 protocol endpoints it names are not served.
- `/common/discovery/instance?api-version=1.1&authorization_endpoint=...`: instance discovery,
  as MSAL calls it to validate an authority: the tenant's discovery document and the host's
  aliases (`preferred_network`, `preferred_cache`, `aliases`), or `invalid_instance`
  (AADSTS50049) for an authorization endpoint on another host. Hosts are compared without their
  port: MSAL Python names the instance by its host name alone.
- `/{tenant}/discovery/v2.0/keys` (each key with the v2.0 issuer) and `/{tenant}/discovery/keys`
  (v1.0, without): the JWKS (see keys.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from localentra.directory import TENANT
from localentra.errors import EntraError, missing
from localentra.protocol import ALIASES

if TYPE_CHECKING:
    from localentra.protocol import Request
    from localentra.service import LocalEntra

CLAIMS = ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host",
          "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
          "c_hash", "email"]


def _in_paths(tenant: str) -> str:
    """The tenant as the document's endpoints name it: an alias stays, a domain becomes the id."""
    return tenant.lower() if tenant.lower() in ALIASES else TENANT


def openid_configuration(entra: LocalEntra, tenant: str) -> dict[str, object]:
    base, path = entra.base_url, f"{entra.base_url}/{_in_paths(tenant)}"
    alias = tenant.lower() in ALIASES
    host = urlsplit(base).hostname or ""
    return {
        "token_endpoint": f"{path}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{path}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{{tenantid}}/v2.0" if alias else f"{base}/{TENANT}/v2.0",
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{path}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{path}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{path}/oauth2/v2.0/logout",
        "claims_supported": CLAIMS,
        "kerberos_endpoint": f"{path}/kerberos",
        "tenant_region_scope": None if alias else "NA",
        "cloud_instance_name": host,
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def openid_configuration_v1(entra: LocalEntra, tenant: str) -> dict[str, object]:
    base, path = entra.base_url, f"{entra.base_url}/{_in_paths(tenant)}"
    alias = tenant.lower() in ALIASES
    return {
        "token_endpoint": f"{path}/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/common/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": f"{base}/{{tenantid}}/" if alias else f"{base}/{TENANT}/",
        "microsoft_multi_refresh_token": True,
        "authorization_endpoint": f"{path}/oauth2/authorize",
        "device_authorization_endpoint": f"{path}/oauth2/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{path}/oauth2/logout",
        "claims_supported": CLAIMS,
        "tenant_region_scope": None if alias else "NA",
    }


def keys(entra: LocalEntra, tenant: str, v2: bool) -> dict[str, object]:
    alias = tenant.lower() in ALIASES
    issuer = f"{entra.base_url}/{{tenantid}}/v2.0" if alias else f"{entra.base_url}/{TENANT}/v2.0"
    return entra.keys.jwks(issuer if v2 else None)


def instance(entra: LocalEntra, request: Request) -> dict[str, object]:
    endpoint = request.query.get("authorization_endpoint")
    if not endpoint:
        raise missing("authorization_endpoint")
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
    except ValueError:
        host = ""
    if not host or host != urlsplit(entra.base_url).hostname or parts.scheme != "https":
        raise EntraError("invalid_instance", 50049)
    tenant = parts.path.strip("/").split("/")[0] or "common"
    return {
        "tenant_discovery_endpoint": f"{entra.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }
