"""Access tokens, ID tokens and `client_info`, with the claims Entra puts in them, signed RS256 with PyJWT.

Claims: learn.microsoft.com/entra/identity-platform/access-token-claims-reference and
id-token-claims-reference. A resource's `accessTokenAcceptedVersion` decides the format:

- v2.0 (the API app): `iss` `{authority host}/{tenant}/v2.0`, `aud` the API's client id,
  `azp`/`azpacr` for the client, `preferred_username`, `ver` "2.0"; `upn` because the API
  asks for it as an optional claim. Header `typ`, `alg`, `kid`.
- v1.0 (Microsoft's first-party resources): `aud` the resource as the request named it,
  `appid`/`appidacr`, `unique_name`/`upn` and `amr`/`acr` for users, `ver` "1.0"; header with
  `x5t` beside `kid` ("a legacy claim emitted only in v1.0 access tokens"). Real Entra's v1.0
  issuer is `https://sts.windows.net/{tenant}/`; the stand-in's is `{authority host}/{tenant}/`,
  its own host in the place of sts.windows.net, so that nothing here names Azure's.

Users' tokens carry `scp` (delegated scopes) and, when they have assignments on the resource,
`roles`; applications' tokens (client credentials) carry `roles` from their app-role
assignments only, `idtyp` "app" and their service principal's `oid` as `sub`. `sub` is
pairwise otherwise: the same user has a different one per application. `aio`, `rh` and `uti`
are opaque here as there. Lifetime: one hour (`exp`), `nbf` = `iat`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

import jwt

from localentra.directory import TENANT, Application, Directory, User
from localentra.keys import KeySet, b64url
from localentra.scopes import ResourceScopes

LIFETIME = 3600


def issuer_v2(base_url: str) -> str:
    return f"{base_url}/{TENANT}/v2.0"


def issuer_v1(base_url: str) -> str:
    return f"{base_url}/{TENANT}/"


def pairwise_subject(oid: str, app_id: str) -> str:
    """The `sub` of `oid` as seen by one application: stable, different per application."""
    return b64url(hashlib.sha256(f"localentra-sub:{oid}:{app_id}".encode()).digest())


def client_info(user: User) -> str:
    """MSAL's `client_info`: base64url of the user's object id and home tenant."""
    return b64url(json.dumps({"uid": user.oid, "utid": TENANT}).encode())


def _opaque(size: int) -> str:
    return b64url(secrets.token_bytes(size))


@dataclass(frozen=True)
class Grant:
    """What a token is issued for: a client, for a user or as itself, to one resource's scopes."""

    client: Application
    scopes: ResourceScopes
    user: User | None = None  # None: the client acts as itself (client credentials)


class TokenIssuer:
    def __init__(self, directory: Directory, keys: KeySet) -> None:
        self.directory, self.keys = directory, keys

    def _sign(self, claims: dict[str, object], *, x5t: bool = False) -> str:
        key = self.keys.current
        headers = {"typ": "JWT", "kid": key.kid, **({"x5t": key.kid} if x5t else {})}
        return jwt.encode(claims, key.private_pem, algorithm="RS256", headers=headers)

    def access_token(self, base_url: str, grant: Grant) -> str:
        resource, user, client = grant.scopes.resource, grant.user, grant.client
        now = int(time.time())
        v2 = resource.token_version == 2
        claims: dict[str, object] = {
            "aud": resource.app_id if v2 else grant.scopes.requested_as,
            "iss": issuer_v2(base_url) if v2 else issuer_v1(base_url),
            "iat": now, "nbf": now, "exp": now + LIFETIME, "aio": _opaque(48),
        }
        authenticated = "1" if client.confidential else "0"
        claims.update({"azp": client.client_id, "azpacr": authenticated} if v2
                      else {"appid": client.client_id, "appidacr": authenticated})
        if user is None:
            roles = sorted(client.app_roles_held.get(resource.app_id, ()))
            claims.update({"idtyp": "app", "oid": client.principal_id, "sub": client.principal_id})
            if not v2:
                claims["idp"] = claims["iss"]
        else:
            roles = list(self.directory.roles(user, resource))
            claims.update({"name": user.display_name, "oid": user.oid, "scp": " ".join(grant.scopes.delegated),
                           "sub": pairwise_subject(user.oid, resource.app_id), "upn": user.upn})
            if v2:
                claims["preferred_username"] = user.upn
            else:
                given, _, family = user.display_name.partition(" ")
                claims.update({"acr": "1", "amr": ["pwd"], "family_name": family, "given_name": given,
                               "ipaddr": "127.0.0.1", "unique_name": user.upn})
        if roles:
            claims["roles"] = roles
        claims.update({"rh": f"0.{_opaque(60)}.", "tid": TENANT, "uti": _opaque(16), "ver": "2.0" if v2 else "1.0"})
        return self._sign(claims, x5t=not v2)

    def id_token(self, base_url: str, client: Application, user: User, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "aud": client.client_id, "iss": issuer_v2(base_url), "iat": now, "nbf": now, "exp": now + LIFETIME,
            "aio": _opaque(48), "name": user.display_name, **({"nonce": nonce} if nonce else {}), "oid": user.oid,
            "preferred_username": user.upn, "rh": f"0.{_opaque(60)}.",
            "sub": pairwise_subject(user.oid, client.client_id), "tid": TENANT, "uti": _opaque(16), "ver": "2.0",
        }
        return self._sign(claims)
