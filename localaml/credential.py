"""The service's side of its bearer tokens: Entra ID's, which it checks on every request, and its own for jobs.

Azure ML takes Microsoft Entra access tokens: JWTs signed RS256 by the tenant's keys, which
a resource finds through the tenant's OpenID Connect metadata (`jwks_uri`) and checks for
signature, issuer, audience and lifetime (learn.microsoft.com/entra/identity-platform/
access-tokens#validate-tokens, claims-validation). Resource Manager and Azure ML take v1.0
tokens (`iss` `https://sts.windows.net/{tenant}/`, here the tenant's authority host in its
place), whose `aud` is the resource named in the request: `https://management.azure.com`,
`https://management.core.windows.net`, or `https://ml.azure.com`, with or without a trailing
slash. `EntraTokens` does these checks against the tenant it is given (the local Entra ID
stand-in, over HTTPS), keeping the keys it fetched for five minutes and fetching again, at
most every few seconds, when a token names a key it does not know (a rollover).

The claims say who acts, as Entra's do: `upn` for a user, `appid` or `oid` for an application
(`service.identity()` reads them for systemData).

The service also issues tokens of its own, to the jobs it runs, for their MLflow tracking
server (`issue`): JWT-shaped, with the service's secret in the signature's place; it takes
them on its MLflow routes only.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.request
from typing import Any

import jwt

# The tenant of the service's subscription: registry discovery answers it (`tenantId`), the tokens it takes
# are signed by it and the tokens the service issues name it (`tid`).
TENANT = "22222222-2222-2222-2222-222222222222"
AUDIENCES = tuple(
    f"{resource}{slash}"
    for resource in ("https://management.azure.com", "https://management.core.windows.net", "https://ml.azure.com")
    for slash in ("", "/")
)
KEYS_TTL = 300
REFETCH_AFTER = 5  # seconds between fetches forced by an unknown key id
LEEWAY = 300  # clock skew allowed on exp / nbf, as Microsoft's token validation allows by default


def _decode(part: str) -> bytes:
    """A base64url part without its padding, as JWTs write them (RFC 7515 section 2, `BASE64URL`); a character
    outside that alphabet is an error, not skipped."""
    return base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _parts(authorization: str | None) -> list[str] | None:
    """The three parts of a `Bearer` header's token, None if it has no such token."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    parts = authorization.removeprefix("Bearer ").split(".")
    return parts if len(parts) == 3 else None


def token_secret(authorization: str | None) -> str | None:
    """The secret one of the service's own tokens carries in its signature's place, None if the header is none."""
    parts = _parts(authorization)
    if parts is None:
        return None
    try:
        return _decode(parts[2]).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


def token_claims(authorization: str | None) -> dict[str, Any]:
    """The claims of a bearer token's payload, unchecked; empty when there is no token or no JSON object in it."""
    parts = _parts(authorization)
    if parts is None:
        return {}
    try:
        claims = json.loads(_decode(parts[1]))
    except ValueError:  # bad base64, bad UTF-8 or bad JSON
        return {}
    return claims if isinstance(claims, dict) else {}


def issue(secret: str, audience: str, lifetime_seconds: int = 3600) -> str:
    """A token of the service's own, for `audience`, that it hands a job it runs (MLFLOW_TRACKING_TOKEN).

    Azure ML gives a job's process a token for the workspace's tracking server; this one names the
    service's tenant and audience and carries `secret` in the signature's place.
    """
    header = {"alg": "none", "typ": "JWT"}
    claims = {"aud": audience, "tid": TENANT, "exp": int(time.time()) + lifetime_seconds}
    return ".".join((_encode(json.dumps(header).encode()), _encode(json.dumps(claims).encode()),
                     _encode(secret.encode())))


class EntraTokens:
    """Checks bearer tokens of the tenant's Entra ID at `authority_host` (e.g. `https://127.0.0.1:8444`)."""

    def __init__(self, authority_host: str, ca_file: str | None = None, tenant: str = TENANT) -> None:
        self.authority = f"{authority_host.rstrip('/')}/{tenant}"
        self.issuer = f"{self.authority}/"
        self._context = ssl.create_default_context(cafile=ca_file)
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0

    def _get(self, url: str) -> Any:
        with urllib.request.urlopen(url, context=self._context, timeout=30) as answer:
            return json.loads(answer.read())

    def _key(self, kid: str) -> Any:
        with self._lock:
            stale = time.time() - self._fetched > KEYS_TTL
            if stale or (kid not in self._keys and time.time() - self._fetched > REFETCH_AFTER):
                metadata = self._get(f"{self.authority}/.well-known/openid-configuration")
                if not str(metadata.get("jwks_uri", "")).startswith("https://"):
                    raise ValueError("the tenant's metadata names no https jwks_uri")
                document = self._get(metadata["jwks_uri"])
                self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(document).keys if key.key_id}
                self._fetched = time.time()
            return self._keys.get(kid)

    def claims(self, authorization: str | None) -> dict[str, Any] | None:
        """The claims of a valid Entra token in an `Authorization: Bearer` header, None for anything else."""
        parts = _parts(authorization)
        if parts is None:
            return None
        token = ".".join(parts)
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
                return None
            key = self._key(header["kid"])
            if key is None:
                return None
            return dict(jwt.decode(token, key.key, algorithms=["RS256"], audience=list(AUDIENCES), issuer=self.issuer,
                                   leeway=LEEWAY, options={"require": ["exp", "iat", "aud", "iss", "tid"]}))
        except (jwt.InvalidTokenError, jwt.PyJWKError, jwt.PyJWKSetError, OSError, ValueError):
            return None
