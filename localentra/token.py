"""`/{tenant}/oauth2/v2.0/token`: the client is authenticated, then its grant redeemed.

Clients (v2-oauth2-auth-code-flow, "Redeem a code"; reference-error-codes):

- Unknown: `unauthorized_client` AADSTS700016.
- Public (opsctl; the API app as a single-page app): no secret may be sent (`invalid_client`
  AADSTS700025, 401).
- Confidential (the function app): its secret in the form or as HTTP Basic; none is
  `invalid_client` AADSTS7000218, a wrong one AADSTS7000215 (401). A secret is never taken from
  a browser: a request carrying `Origin` is refused (AADSTS9002326), as Entra "prevents the use of
  client credentials in all flows in the presence of an Origin header".

Grants:

- `authorization_code`: the code must be this client's, unexpired (AADSTS70008), not redeemed
  before (AADSTS54005), sent with the same `redirect_uri` (AADSTS500112) and, when the request
  used PKCE, the `code_verifier` whose S256 (or plain) is the challenge (missing: AADSTS50148,
  wrong: AADSTS501481; the code is spent either way). A code issued to a `spa` redirect URI is
  only redeemed cross-origin, with `Origin` (AADSTS9002327); any other only without
  (AADSTS9002326).
- `urn:ietf:params:oauth:grant-type:device_code` (public clients): `authorization_pending`
  until the person signs in, then the tokens once; `authorization_declined`, `expired_token`,
  `bad_verification_code` for an unknown device code (v2-oauth2-device-code, "Expected errors").
- `client_credentials` (confidential clients): scope `<resource>/.default` only (AADSTS1002012);
  the token carries the app roles granted to the client, if any.
- `refresh_token`: for any resource (consent is tenant-wide here); a new refresh token comes
  back, the old one stays valid; SPA ones expire 24 h after the sign-in (AADSTS700084) and are
  redeemed cross-origin as SPA codes are.

A successful answer has `token_type`, `scope`, `expires_in`, `ext_expires_in`, `access_token`,
and `refresh_token` (offline_access asked), `id_token` (openid asked), `client_info` (client_info=1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from localentra.errors import EntraError, missing
from localentra.scopes import ResourceScopes, ScopeRequest, one_resource
from localentra.scopes import parse as parse_scopes
from localentra.sessions import SPA_REFRESH_LIFETIME, RefreshGrant
from localentra.tokens import LIFETIME, Grant, client_info

if TYPE_CHECKING:
    from localentra.directory import Application, User
    from localentra.protocol import Request
    from localentra.service import LocalEntra

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANTS = ("authorization_code", DEVICE_CODE, "client_credentials", "refresh_token")


def token(entra: LocalEntra, request: Request, tenant: str) -> dict[str, object]:
    form = request.form
    grant_type = form.get("grant_type")
    if not grant_type:
        raise missing("grant_type")
    basic = request.basic_credentials()
    client_id = form.get("client_id") or (basic[0] if basic else None)
    if not client_id:
        raise missing("client_id")
    client = entra.directory.application(client_id)
    if client is None:
        raise EntraError("unauthorized_client", 700016, client_id, tenant)
    _authenticate(client, request, form.get("client_secret") or (basic[1] if basic else None))
    if grant_type == "authorization_code":
        return _authorization_code(entra, request, client, tenant)
    if grant_type == DEVICE_CODE:
        return _device_code(entra, request, client)
    if grant_type == "client_credentials":
        return _client_credentials(entra, request, client, tenant)
    if grant_type == "refresh_token":
        return _refresh_token(entra, request, client, tenant)
    raise EntraError("unsupported_grant_type", 70003, grant_type)


def _authenticate(client: Application, request: Request, secret: str | None) -> None:
    if not client.confidential:
        if secret or request.form.get("client_assertion"):
            raise EntraError("invalid_client", 700025)
        return
    if request.origin:
        raise EntraError("invalid_request", 9002326)
    if not secret:
        raise EntraError("invalid_client", 7000218)
    if not client.check_secret(secret):
        raise EntraError("invalid_client", 7000215, client.client_id)


def _cross_origin(request: Request, spa: bool) -> None:
    if spa and not request.origin:
        raise EntraError("invalid_request", 9002327)
    if not spa and request.origin:
        raise EntraError("invalid_request", 9002326)


def _pkce_matches(verifier: str, challenge: str, method: str | None) -> bool:
    if method == "S256":
        verifier = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return hmac.compare_digest(verifier.encode(), challenge.encode())


def _requested(entra: LocalEntra, request: Request, tenant: str, consented: ScopeRequest) -> ScopeRequest:
    """The scopes the token request names, or those of the first leg when it names none."""
    scope = request.form.get("scope", "")
    if not scope.strip():
        return consented
    asked = parse_scopes(entra.directory, scope, tenant)
    return asked if asked.resources else ScopeRequest(consented.resources, asked.oidc)


def _authorization_code(entra: LocalEntra, request: Request, client: Application, tenant: str) -> dict[str, object]:
    code, redirect_uri = request.form.get("code"), request.form.get("redirect_uri")
    if not code:
        raise missing("code")
    if not redirect_uri:
        raise missing("redirect_uri")
    with entra.sessions.lock:
        grant = entra.sessions.codes.get(code)
        if grant is None:
            raise EntraError("invalid_grant", 9002313)
        if grant.client_id != client.client_id:
            raise EntraError("invalid_grant", 70000)
        if grant.expires < time.time():
            raise EntraError("invalid_grant", 70008)
        if grant.redeemed:
            raise EntraError("invalid_grant", 54005)
        _cross_origin(request, grant.spa)
        if redirect_uri != grant.redirect_uri:
            raise EntraError("invalid_grant", 500112, redirect_uri, grant.redirect_uri)
        if grant.challenge is not None:
            verifier = request.form.get("code_verifier")
            if not verifier:
                grant.redeemed = True
                raise EntraError("invalid_grant", 50148)
            if not _pkce_matches(verifier, grant.challenge, grant.method):
                grant.redeemed = True
                raise EntraError("invalid_grant", 501481)
        requested = _requested(entra, request, tenant, grant.scopes)
        consented = {scopes.resource.app_id for scopes in grant.scopes.resources}
        if any(scopes.resource.app_id not in consented for scopes in requested.resources):
            raise EntraError("invalid_grant", 65001, client.client_id, client.display_name)
        resource = one_resource(requested)
        grant.redeemed = True
    expires = time.time() + SPA_REFRESH_LIFETIME if grant.spa else None
    oidc = {*grant.scopes.oidc, *requested.oidc}
    return _issue(entra, request, client, grant.user, resource, grant.scopes, oidc, grant.nonce, expires)


def _device_code(entra: LocalEntra, request: Request, client: Application) -> dict[str, object]:
    if not (client.public_client or client.confidential):
        raise EntraError("invalid_client", 7000218)
    device_code = request.form.get("device_code")
    if not device_code:
        raise missing("device_code")
    with entra.sessions.lock:
        device = entra.sessions.devices.get(device_code)
        if device is None:
            raise EntraError("bad_verification_code", 70018)
        if device.client_id != client.client_id or device.redeemed:
            raise EntraError("invalid_grant", 70000)
        if device.declined:
            raise EntraError("authorization_declined", 65004)
        if device.expires < time.time():
            raise EntraError("expired_token", 70020)
        if device.user is None:
            raise EntraError("authorization_pending", 70016)
        device.redeemed = True
    resource, oidc = one_resource(device.scopes), set(device.scopes.oidc)
    return _issue(entra, request, client, device.user, resource, device.scopes, oidc, None, None)


def _client_credentials(entra: LocalEntra, request: Request, client: Application, tenant: str) -> dict[str, object]:
    if not client.confidential:
        raise EntraError("invalid_client", 7000218)
    scope = request.form.get("scope", "")
    if not scope.strip():
        raise missing("scope")
    for word in scope.split():
        if not word.endswith("/.default"):
            raise EntraError("invalid_scope", 1002012, word)
    resource = one_resource(parse_scopes(entra.directory, scope, tenant))
    access_token = entra.issuer.access_token(entra.base_url, Grant(client, resource))
    return {"token_type": "Bearer", "expires_in": LIFETIME - 1, "ext_expires_in": LIFETIME - 1,
            "access_token": access_token}


def _refresh_token(entra: LocalEntra, request: Request, client: Application, tenant: str) -> dict[str, object]:
    refresh_token = request.form.get("refresh_token")
    if not refresh_token:
        raise missing("refresh_token")
    with entra.sessions.lock:
        grant = entra.sessions.refresh_tokens.get(refresh_token)
    if grant is None:
        raise EntraError("invalid_grant", 9002313)
    if grant.client_id != client.client_id:
        raise EntraError("invalid_grant", 70000)
    _cross_origin(request, grant.expires is not None)
    if grant.expires is not None and grant.expires < time.time():
        issued = datetime.fromtimestamp(grant.expires - SPA_REFRESH_LIFETIME, UTC).strftime("%m/%d/%Y %H:%M:%S")
        raise EntraError("invalid_grant", 700084, issued)
    requested = _requested(entra, request, tenant, grant.scopes)
    oidc = {*grant.scopes.oidc, *requested.oidc}
    return _issue(entra, request, client, grant.user, one_resource(requested), grant.scopes, oidc, None, grant.expires)


def _issue(
    entra: LocalEntra, request: Request, client: Application, user: User, resource: ResourceScopes,
    consented: ScopeRequest, asked: set[str], nonce: str | None, refresh_expires: float | None,
) -> dict[str, object]:
    """The token response for `user`'s `resource` token; refresh and ID tokens when `asked` (OIDC scopes) says."""
    body: dict[str, object] = {
        "token_type": "Bearer", "scope": resource.response_scope(), "expires_in": LIFETIME - 1,
        "ext_expires_in": LIFETIME - 1,
        "access_token": entra.issuer.access_token(entra.base_url, Grant(client, resource, user)),
    }
    if "offline_access" in asked:
        body["refresh_token"] = entra.sessions.new_refresh_token(
            RefreshGrant(client.client_id, user, consented, refresh_expires))
    if "openid" in asked:
        body["id_token"] = entra.issuer.id_token(entra.base_url, client, user, nonce)
    if request.form.get("client_info") == "1":
        body["client_info"] = client_info(user)
    return body
