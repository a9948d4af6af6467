"""The credential that the app uses against the local Azure ML service, and only there.

Azure ML's SDK reads claims from its bearer token (never its signature) and checks the
audience before it submits a pipeline job, so the token is JWT-shaped: real claims, and
in place of a signature the local service's secret, which the service checks on every
request. No Azure service accepts such a token.
"""

from __future__ import annotations

import base64
import json
import time

from azure.core.credentials import AccessToken

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
    """A JWT-shaped token for `audience` signed, in the local service's sense, with `secret`."""
    header, body = _part({"alg": "none", "typ": "JWT"}), _part({**CLAIMS, **(claims or {}), "aud": audience})
    return f"{header}.{body}.{_encode(secret.encode())}"


def token_secret(authorization: str | None) -> str | None:
    """The secret a bearer token carries, None if the header is not a local token."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        return base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)).decode()
    except ValueError:
        return None


class LocalCredential:
    """A TokenCredential giving the local service's token for any scope; the scopes asked for are kept."""

    def __init__(self, secret: str, claims: dict[str, object] | None = None) -> None:
        self.secret = secret
        self.claims = claims or {}
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        return AccessToken(local_token(self.secret, audience, self.claims), int(time.time()) + 3600)
