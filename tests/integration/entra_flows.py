"""What the local Entra ID tests do over HTTP: start the stand-in, sign in through its pages, check tokens.

Not a test module: the helpers of test_localentra*.py. A browser's part of the authorization
code flow is done with requests, reading the sign-in form's hidden fields as a browser would
post them back.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import requests

from devhost.entra import LocalEntraStack, running_local_entra
from localaml.tls import make_certificates
from localentra.directory import TENANT

HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


@contextmanager
def entra_stack() -> Iterator[LocalEntraStack]:
    with tempfile.TemporaryDirectory() as folder, running_local_entra(make_certificates(Path(folder))) as stack:
        yield stack


def pkce() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def hidden_fields(page: str) -> dict[str, str]:
    return {unescape(name): unescape(value) for name, value in HIDDEN.findall(page)}


def authorize_url(stack: LocalEntraStack) -> str:
    return f"{stack.authority}/oauth2/v2.0/authorize"


def token_url(stack: LocalEntraStack, tenant: str = TENANT) -> str:
    return f"{stack.base_url}/{tenant}/oauth2/v2.0/token"


def sign_in(
    stack: LocalEntraStack, params: dict[str, str], user: str, password: str | None = None
) -> requests.Response:
    """Open /authorize with `params`, then post its sign-in form as `user`; the answer, redirects not followed."""
    with stack.session() as session:
        page = session.get(authorize_url(stack), params=params, allow_redirects=False, timeout=30)
        assert page.status_code == 200, page.text
        person = stack.entra.directory.user(user)
        form = {**hidden_fields(page.text), "username": person.upn if person else user,
                "password": password if password is not None else (person.password if person else "")}
        return session.post(authorize_url(stack), data=form, allow_redirects=False, timeout=30)


def redirected(response: requests.Response) -> dict[str, str]:
    """The parameters a 302 to the redirect URI carries, from its query or its fragment."""
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    return dict(parse_qsl(location.fragment or location.query))


def spa_code(stack: LocalEntraStack, user: str, scope: str, redirect_uri: str) -> tuple[str, str, dict[str, str]]:
    """A code for the control room page (the API app as a SPA, PKCE S256, fragment): code, verifier, answer."""
    verifier, challenge = pkce()
    answer = redirected(sign_in(stack, {
        "client_id": stack.api_client_id, "response_type": "code", "redirect_uri": redirect_uri, "scope": scope,
        "response_mode": "fragment", "state": "s-1", "nonce": "n-1", "code_challenge": challenge,
        "code_challenge_method": "S256", "client_info": "1",
    }, user))
    return answer["code"], verifier, answer


def post_token(stack: LocalEntraStack, form: dict[str, str], **headers: str) -> requests.Response:
    with stack.session() as session:
        return session.post(token_url(stack), data=form, headers=headers, timeout=30)


def jwks(stack: LocalEntraStack) -> dict[str, Any]:
    with stack.session() as session:
        document = session.get(f"{stack.authority}/discovery/v2.0/keys", timeout=30)
    document.raise_for_status()
    return dict(document.json())


def validate(stack: LocalEntraStack, token: str, audience: str, issuer: str) -> dict[str, Any]:
    """The claims of `token` after PyJWT checked its signature against the published keys, audience, issuer, expiry."""
    kid = jwt.get_unverified_header(token)["kid"]
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(jwks(stack)).keys}
    if kid not in keys:
        raise jwt.InvalidTokenError(f"no published key {kid}")
    return dict(jwt.decode(token, keys[kid].key, algorithms=["RS256"], audience=audience, issuer=issuer,
                           options={"require": ["exp", "iat", "nbf", "aud", "iss"]}))


def v2_issuer(stack: LocalEntraStack) -> str:
    return f"{stack.base_url}/{TENANT}/v2.0"


def v1_issuer(stack: LocalEntraStack) -> str:
    return f"{stack.base_url}/{TENANT}/"


def aadsts(response: requests.Response) -> tuple[int, str, int]:
    """A JSON refusal's HTTP status, OAuth error and AADSTS code (a success's status, "" and 0)."""
    body = response.json()
    return response.status_code, body.get("error", ""), body.get("error_codes", [0])[0]
