"""The stand-in for Microsoft Entra ID: its state and its routes, on Entra's paths.

`LocalEntra.handle()` answers one HTTP request; `server.serving()` puts it on a loopback HTTPS
port. The routes (`{tenant}` an id, a domain or `organizations`/`common`, see protocol.py):

| method     | path                                          | answers                         |
| ---------- | --------------------------------------------- | ------------------------------- |
| GET        | /{tenant}/v2.0/.well-known/openid-configuration | discovery.py                 |
| GET        | /{tenant}/.well-known/openid-configuration    | discovery.py (v1.0)             |
| GET        | /common/discovery/instance                    | discovery.py                    |
| GET        | /{tenant}/discovery/v2.0/keys, /discovery/keys | the JWKS                       |
| GET, POST  | /{tenant}/oauth2/v2.0/authorize               | authorize.py (pages)            |
| POST       | /{tenant}/oauth2/v2.0/devicecode              | device.py                       |
| POST       | /{tenant}/oauth2/v2.0/token                   | token.py                        |
| GET        | /{tenant}/oauth2/v2.0/logout                  | sign-out                        |
| GET, POST  | /devicelogin                                  | device.py (pages)               |

The JSON endpoints answer any origin (`Access-Control-Allow-Origin: *`) and CORS preflights,
as Entra's discovery, keys and token endpoints do for single-page apps (v2-oauth2-auth-code-flow,
"Redirect URIs for single-page apps"; the `*` of the discovery document as recorded in
Azure/azure-sdk-for-python#18884); their refusals are JSON in Entra's shape (errors.py), a
JSON endpoint called with the wrong method is AADSTS900561. The pages answer refusals as pages.
"""

from __future__ import annotations

import re
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from localentra import authorize, device, discovery, pages, token
from localentra.directory import TENANT, Directory
from localentra.errors import EntraError, Reply
from localentra.keys import KeySet
from localentra.protocol import Request, check_tenant, parse
from localentra.sessions import Sessions
from localentra.tokens import TokenIssuer

TENANT_PATH = r"^/(?P<tenant>[^/]+)"
COMMON_HEADERS = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff",
                  "Strict-Transport-Security": "max-age=31536000; includeSubDomains"}
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Max-Age": "86400"}
SAFE_HEADER_LIST = re.compile(r"^[A-Za-z0-9\-, ]{0,512}$")


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]
    handler: Callable[[LocalEntra, Request, str], object]
    page: bool = False  # answers HTML (refusals as pages) rather than JSON


class LocalEntra:
    """One tenant's directory, signing keys and sign-in state; `handle()` answers its endpoints."""

    def __init__(self) -> None:
        self.directory = Directory()
        self.keys = KeySet()
        self.issuer = TokenIssuer(self.directory, self.keys)
        self.sessions = Sessions()
        self.base_url = ""  # https://127.0.0.1:<port>, set when served
        self.failures: list[str] = []  # tracebacks of requests answered 500: a bug of the stand-in
        self.routes = [
            Route(("GET",), re.compile(TENANT_PATH + r"/v2\.0/\.well-known/openid-configuration$"),
                  lambda entra, _, tenant: discovery.openid_configuration(entra, tenant)),
            Route(("GET",), re.compile(TENANT_PATH + r"/\.well-known/openid-configuration$"),
                  lambda entra, _, tenant: discovery.openid_configuration_v1(entra, tenant)),
            Route(("GET",), re.compile(r"^/common/discovery/instance$"),
                  lambda entra, request, _: discovery.instance(entra, request)),
            Route(("GET",), re.compile(TENANT_PATH + r"/discovery/v2\.0/keys$"),
                  lambda entra, _, tenant: discovery.keys(entra, tenant, v2=True)),
            Route(("GET",), re.compile(TENANT_PATH + r"/discovery/keys$"),
                  lambda entra, _, tenant: discovery.keys(entra, tenant, v2=False)),
            Route(("GET", "POST"), re.compile(TENANT_PATH + r"/oauth2/v2\.0/authorize$"), authorize.authorize, True),
            Route(("POST",), re.compile(TENANT_PATH + r"/oauth2/v2\.0/devicecode$"), device.device_code),
            Route(("POST",), re.compile(TENANT_PATH + r"/oauth2/v2\.0/token$"), token.token),
            Route(("GET",), re.compile(TENANT_PATH + r"/oauth2/v2\.0/logout$"), _logout, True),
            Route(("GET", "POST"), re.compile(r"^/devicelogin$"),
                  lambda entra, request, _: device.device_login(entra, request), True),
        ]

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{TENANT}"

    def rotate_signing_key(self) -> str:
        """Sign with a new key from now on, the older ones still published; the new key's kid."""
        return self.keys.rotate().kid

    def retire_oldest_key(self) -> str:
        """Stop publishing the oldest signing key; its kid."""
        return self.keys.retire_oldest()

    def add_spa_redirect_uri(self, uri: str) -> None:
        self.directory.add_spa_redirect_uri(uri)

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request: never a 500 but for a bug of the stand-in (recorded in `failures`)."""
        reply = self._route(method, target, headers, body)
        for name, value in COMMON_HEADERS.items():
            reply.headers.setdefault(name, value)
        reply.headers["x-ms-request-id"] = str(uuid.uuid4())
        request_id = {name.lower(): value for name, value in headers.items()}.get("client-request-id", "")
        if request_id and len(request_id) <= 64 and request_id.isprintable():
            reply.headers["client-request-id"] = request_id
        return reply

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path = target.partition("?")[0].partition("#")[0]
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            cors = {} if route.page else dict(CORS_HEADERS)
            if method == "OPTIONS" and not route.page:
                return Reply(204, headers={**cors, **_allowed_headers(headers)})
            if method not in route.methods:
                if route.page:
                    return pages.message("Sign in", f"The endpoint only accepts {' or '.join(route.methods)}.", 405)
                error = EntraError("invalid_request", 900561, "/".join(route.methods), method[:16])
                return Reply.json(error.status, error.body(self.base_url), cors)
            correlation = None
            try:
                request = parse(method, target, headers, body)
                correlation = request.correlation_id
                tenant = found.groupdict().get("tenant", "")
                if tenant:
                    check_tenant(tenant)
                answer = route.handler(self, request, tenant)
            except EntraError as error:
                if route.page:
                    return pages.message("Sign in", f"AADSTS{error.code}: {error.message}", 400)
                return Reply.json(error.status, error.body(self.base_url, correlation), cors)
            except Exception:
                self.failures.append(traceback.format_exc())
                return Reply.json(500, {"error": "server_error", "error_description": "The stand-in failed."}, cors)
            if isinstance(answer, Reply):
                answer.headers.update(cors)
                return answer
            return Reply.json(200, answer, cors)
        return pages.message("Not found", "The page you asked for does not exist.", 404)


def _allowed_headers(headers: dict[str, str]) -> dict[str, str]:
    """A preflight's answer allows the headers it asks for (Entra allows the request headers MSAL.js sends)."""
    asked = {name.lower(): value for name, value in headers.items()}.get("access-control-request-headers", "")
    return {"Access-Control-Allow-Headers": asked} if asked and SAFE_HEADER_LIST.match(asked) else {}


def _logout(entra: LocalEntra, request: Request, tenant: str) -> Reply:
    """Sign-out: no session is kept, so there is nothing to end; back to `post_logout_redirect_uri` when it is a
    registered redirect URI (learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#send-a-sign-out-request),
    else the signed-out page."""
    target = request.query.get("post_logout_redirect_uri", "")
    registered = any(app.redirect_type(target) for app in entra.directory.applications.values()) if target else False
    if registered and urlsplit(target).scheme in ("http", "https"):
        return Reply(302, headers={"Location": target})
    return pages.message("You signed out of your account", "It's a good idea to close all browser windows.")
