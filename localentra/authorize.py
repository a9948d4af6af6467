"""`/{tenant}/oauth2/v2.0/authorize`: the first leg of the authorization code flow, with its sign-in form.

As learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow describes it:

- Who asks and where the answer goes are checked first, and their faults are shown as a page,
  never sent anywhere: a missing or unknown `client_id` (AADSTS900144, AADSTS700016), a missing
  `redirect_uri` (AADSTS900971) or one not registered for the app (AADSTS50011).
- The request's other faults go back to the redirect URI as `error`/`error_description` (and
  `state`): `response_type` other than `code` (unsupported_response_type; no implicit or
  hybrid grant here), a bad `response_mode`, a missing or bad `scope` (AADSTS500011 for an
  unknown resource), a bad PKCE challenge (43 to 128 characters, method `S256` or `plain`),
  none at all for a `spa` redirect URI, which must use PKCE, here with S256
  (AADSTS9002325; reference-third-party-cookies-spas), `prompt=none` (login_required
  AADSTS50058: no sign-in session is kept, so a silent request cannot succeed).
- Otherwise the sign-in form, `login_hint` pre-filling the username. Its POST checks the
  password (AADSTS50126, or AADSTS50034 for an unknown user: the form again) and then redirects
  with a single-use `code` valid ten minutes (and `state`, `session_state`, and `client_info`
  when asked with client_info=1 as MSAL asks) in the query (the default), the fragment or a
  form_post. Consent is granted tenant-wide here, so no consent page follows.
"""

from __future__ import annotations

import hmac
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from localentra import pages
from localentra.errors import EntraError, Reply, missing
from localentra.scopes import ScopeRequest
from localentra.scopes import parse as parse_scopes
from localentra.sessions import CODE_LIFETIME, AuthorizationCode
from localentra.tokens import client_info

if TYPE_CHECKING:
    from localentra.directory import Application
    from localentra.protocol import Request
    from localentra.service import LocalEntra

# The parameters the sign-in form carries along (everything else of the request is dropped).
CARRIED = ("client_id", "redirect_uri", "response_type", "response_mode", "scope", "state", "nonce", "prompt",
           "login_hint", "code_challenge", "code_challenge_method", "client_info", "domain_hint")
RESPONSE_MODES = ("query", "fragment", "form_post")


def authorize(entra: LocalEntra, request: Request, tenant: str) -> Reply:
    params = request.params
    try:
        client, redirect_uri, spa = _recipient(entra, params, tenant)
    except EntraError as error:
        return pages.message("Sign in", f"AADSTS{error.code}: {error.message}", status=400)
    mode = params.get("response_mode") or "query"
    if mode not in RESPONSE_MODES:
        mode, fault = "query", EntraError("invalid_request", 70007, client.client_id, params["response_mode"])
        return _send(redirect_uri, mode, _error_values(entra, request, fault, params))
    try:
        scopes, challenge, method = _validate(entra, params, tenant, spa)
    except EntraError as error:
        return _send(redirect_uri, mode, _error_values(entra, request, error, params))
    action = f"/{tenant}/oauth2/v2.0/authorize"
    carried = {name: params[name] for name in CARRIED if name in params}
    if request.method != "POST" or params.get("localentra_signin") != "1":
        return pages.sign_in(action, client.display_name, carried, params.get("login_hint", ""))
    username = params.get("username", "")
    user = entra.directory.user(username)
    if user is None or not _password_matches(user.password, params.get("password", "")):
        fault = EntraError("invalid_grant", 50126) if user else EntraError("invalid_grant", 50034, username, tenant)
        return pages.sign_in(action, client.display_name, carried, username, f"AADSTS{fault.code}: {fault.message}",
                             status=400)
    code = entra.sessions.new_code(AuthorizationCode(
        client.client_id, redirect_uri, spa, challenge, method, scopes, params.get("nonce") or None, user,
        time.time() + CODE_LIFETIME,
    ))
    values = {"code": code}
    if params.get("client_info") == "1":
        values["client_info"] = client_info(user)
    values.update({**({"state": params["state"]} if "state" in params else {}), "session_state": str(uuid.uuid4())})
    return _send(redirect_uri, mode, values)


def _recipient(entra: LocalEntra, params: dict[str, str], tenant: str) -> tuple[Application, str, bool]:
    """The client and its redirect URI (and whether it is a `spa` one); EntraError to show as a page."""
    client_id = params.get("client_id")
    if not client_id:
        raise missing("client_id")
    client = entra.directory.application(client_id)
    if client is None:
        raise EntraError("unauthorized_client", 700016, client_id, tenant)
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise EntraError("invalid_request", 900971)
    kind = client.redirect_type(redirect_uri)
    if kind is None:
        raise EntraError("invalid_request", 50011, redirect_uri, client.client_id)
    return client, redirect_uri, kind == "spa"


def _validate(
    entra: LocalEntra, params: dict[str, str], tenant: str, spa: bool
) -> tuple[ScopeRequest, str | None, str | None]:
    if params.get("response_type") != "code":
        raise EntraError("unsupported_response_type", 70005, params.get("response_type", ""))
    if not params.get("scope"):
        raise missing("scope")
    scopes = parse_scopes(entra.directory, params["scope"], tenant)
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or ("plain" if challenge else None)
    if method is not None and challenge is None:
        raise missing("code_challenge")
    if method not in (None, "S256", "plain"):
        raise EntraError("invalid_request", 50149)
    if challenge is not None and not 43 <= len(challenge) <= 128:
        raise EntraError("invalid_request", 501491)
    if spa and method != "S256":
        raise EntraError("invalid_request", 9002325)
    if params.get("prompt") == "none":
        raise EntraError("login_required", 50058)
    return scopes, challenge, method


def _password_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _error_values(entra: LocalEntra, request: Request, error: EntraError, params: dict[str, str]) -> dict[str, str]:
    body = error.body(entra.base_url, request.correlation_id)
    values = {"error": error.error, "error_description": str(body["error_description"]),
              "error_uri": str(body["error_uri"])}
    if "state" in params:
        values["state"] = params["state"]
    return values


def _send(redirect_uri: str, mode: str, values: dict[str, str]) -> Reply:
    """The answer to the redirect URI, in the query, the fragment or a form post."""
    if mode == "form_post":
        return pages.form_post(redirect_uri, values)
    if mode == "fragment":
        location = f"{redirect_uri.split('#')[0]}#{urlencode(values)}"
    else:
        base = redirect_uri.split("#")[0]
        location = f"{base}{'&' if '?' in base else '?'}{urlencode(values)}"
    return Reply(302, headers={"Location": location, "Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})
