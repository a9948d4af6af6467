"""The service's side of its bearer tokens: it checks one on every request and issues one to each job it runs.

Azure ML takes Microsoft Entra access tokens: JWTs, a header, a payload of claims and a signature, each
base64url-encoded and joined by dots (learn.microsoft.com/entra/identity-platform/access-token-claims-reference;
the compact serialization of RFC 7519 / RFC 7515). The local service has no Entra ID to sign them, so its tokens
keep that shape and carry the service's secret in place of the signature: a request is let in when the
third part decodes to the service's own secret. The claims say who acts, as Entra's do: `upn` for a user,
`appid` or `oid` for an application (`service.identity()` reads them for systemData).

Clients make their tokens on their own side (the app's: its local-service credential in its Azure ML
adapter); nothing is shared with them but this format.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

# The tenant of the service's subscription: registry discovery answers it (`tenantId`) and the tokens the
# service issues name it (`tid`); a client's token names the same tenant, as one signed in to it would.
TENANT = "22222222-2222-2222-2222-222222222222"


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
    """The secret a bearer token carries in its signature's place, None if the header is not such a token."""
    parts = _parts(authorization)
    if parts is None:
        return None
    try:
        return _decode(parts[2]).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


def token_claims(authorization: str | None) -> dict[str, Any]:
    """The claims of a bearer token's payload; empty when there is no token or its payload is not a JSON object."""
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
    service's tenant and audience and, as every local token, carries `secret` in the signature's place.
    """
    header = {"alg": "none", "typ": "JWT"}
    claims = {"aud": audience, "tid": TENANT, "exp": int(time.time()) + lifetime_seconds}
    return ".".join((_encode(json.dumps(header).encode()), _encode(json.dumps(claims).encode()),
                     _encode(secret.encode())))
