"""Entra ID access tokens, verified by the app itself (no App Service authentication in front of it).

What is checked is what Entra's access-token reference asks of a resource
(learn.microsoft.com/entra/identity-platform/access-tokens#validate-tokens): the signature against the
tenant's published keys (found through OpenID Connect discovery, cached, fetched again for a key id
not seen yet), the algorithm (RS256 only), the issuer (`{authority}/{tenant}/v2.0`, the app's
registration asks for v2 tokens), the audience (the registration's client id), the tenant, expiry and
not-before, with the five minutes of clock skew that Microsoft's own validators allow. PyJWT does the
cryptography.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

import certifi
import jwt
import requests

from shared.domain.people import Person
from shared.domain.ports import IdentityUnavailable, TokenRefused

ALGORITHMS = ["RS256"]
CLOCK_SKEW_SECONDS = 300
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "oid", "tid", "ver"]
KEYS_LIFESPAN_SECONDS = 24 * 3600
KEYS_COOLDOWN_SECONDS = 60  # an unknown key id fetches the keys again at most this often


class EntraTokens:
    """The TokenVerifier of the app's Entra registration: `audience` is its client id."""

    def __init__(self, authority: str, tenant: str, audience: str, timeout: float = 10,
                 keys_cooldown: float = KEYS_COOLDOWN_SECONDS) -> None:
        self.authority = authority.rstrip("/")
        self.tenant = tenant
        self.audience = audience
        self.issuer = f"{self.authority}/{tenant}/v2.0"
        self.timeout = timeout
        self.keys_cooldown = keys_cooldown
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def verify(self, token: str) -> Person:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRefused("the bearer token is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenRefused(f"the token's algorithm {str(header.get('alg'))[:20]!r} is not accepted (RS256 only)")
        try:
            key = self.keys().get_signing_key(str(header.get("kid", "")))
        except jwt.PyJWKClientConnectionError as error:
            raise IdentityUnavailable(f"the tenant's signing keys cannot be read: {error}") from None
        except jwt.PyJWKClientError:
            raise TokenRefused("the token is not signed by one of the tenant's keys") from None
        try:
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                                leeway=CLOCK_SKEW_SECONDS, options={"require": REQUIRED_CLAIMS})
        except jwt.InvalidTokenError as error:
            raise TokenRefused(f"the token was refused: {error}") from None
        if claims["tid"] != self.tenant or claims["ver"] != "2.0":
            raise TokenRefused("the token is not a v2 token of the app's tenant")
        return person_of(claims)

    def keys(self) -> jwt.PyJWKClient:
        """The tenant's signing keys, found once through discovery and then cached by PyJWT."""
        with self._lock:
            if self._keys is None:
                self._keys = jwt.PyJWKClient(
                    self._jwks_uri(), cache_keys=False, lifespan=KEYS_LIFESPAN_SECONDS, timeout=self.timeout,
                    ssl_context=ssl.create_default_context(cafile=_ca_bundle()),
                    cooldown_duration=self.keys_cooldown,
                )
            return self._keys

    def _jwks_uri(self) -> str:
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=self.timeout)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as error:
            raise IdentityUnavailable(f"OpenID discovery at {url} failed: {error}") from None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise IdentityUnavailable(f"OpenID discovery at {url} names another issuer than {self.issuer}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise IdentityUnavailable(f"OpenID discovery at {url} gives no https jwks_uri")
        return jwks_uri


def person_of(claims: dict[str, Any]) -> Person:
    """The person (or application) a verified token's claims describe."""
    roles = claims.get("roles")
    app = claims.get("idtyp") == "app"
    return Person(
        oid=str(claims["oid"]),
        name=_text(claims.get("name")),
        roles=frozenset(role for role in roles if isinstance(role, str)) if isinstance(roles, list) else frozenset(),
        username=_text(claims.get("preferred_username")) or None,
        upn=None if app else (_text(claims.get("upn")) or None),
        app_id=_text(claims.get("azp")) or None if app else None,
    )


def _text(value: object) -> str:
    return value[:200] if isinstance(value, str) else ""


def _ca_bundle() -> str:
    """The CA bundle requests uses too: `REQUESTS_CA_BUNDLE` when set (the stand-ins' CA), else requests' own."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or certifi.where()
