"""A request as the endpoints read it: its path, query and form parameters, headers and tenant.

OAuth 2.0 requests are `application/x-www-form-urlencoded` (RFC 6749 section 4.1.3); a body of
any other type is not read, so the request lacks its parameters and is refused for the first
one missing (AADSTS900144), as Entra refuses a JSON body. A parameter given twice, bytes that
are not UTF-8 or too many fields make a malformed request (AADSTS9002313: Entra's
`invalid_request` "Request is malformed or invalid"); the body's size is bounded by the server
(`MAX_BODY`).

Tenants: the path names the tenant by its id or its domain (`contoso.test`), or by the aliases
`organizations` and `common`, which are accepted here and act as the one tenant (a real
multi-tenant app's users could come from any); `consumers` and any other name are refused with
AADSTS90002 "Tenant ... not found" (learn.microsoft.com/entra/identity-platform/v2-protocols#endpoints).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from localentra.directory import TENANT, TENANT_DOMAIN
from localentra.errors import EntraError, malformed

MAX_BODY = 64 * 1024
MAX_FIELDS = 100
FORM = "application/x-www-form-urlencoded"
ALIASES = ("organizations", "common")


def parameters(text: str) -> dict[str, str]:
    """The pairs of a query string or form body; a malformed one is refused as Entra refuses it."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except ValueError as error:  # too many fields, or %-escapes that are not UTF-8
        raise malformed() from error
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found or "\x00" in name + value:
            raise malformed()
        found[name] = value
    return found


def known_tenant(tenant: str) -> bool:
    return tenant.lower() in (TENANT, TENANT_DOMAIN, *ALIASES)


def check_tenant(tenant: str) -> None:
    if not known_tenant(tenant):
        raise EntraError("invalid_tenant", 90002, tenant)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    @property
    def params(self) -> dict[str, str]:
        """The OAuth parameters: the query of a GET, the form of a POST."""
        return self.form if self.method == "POST" else self.query

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin") or None

    @property
    def correlation_id(self) -> str | None:
        """MSAL's `client-request-id`, which Entra echoes as the correlation id."""
        value = self.headers.get("client-request-id", "")
        return value if 0 < len(value) <= 64 and value.isprintable() else None

    def basic_credentials(self) -> tuple[str, str] | None:
        """client_secret_basic (RFC 6749 section 2.3.1): the client id and secret of an `Authorization: Basic`."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise malformed() from None
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise malformed()
        return unquote(client_id), unquote(secret)


def parse(method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
    """The request of an HTTP method, target (path and query), headers and body; EntraError if malformed."""
    path, _, query_text = target.partition("#")[0].partition("?")
    lowered = {name.lower(): value for name, value in headers.items()}
    query = parameters(query_text)
    form: dict[str, str] = {}
    if body and lowered.get("content-type", "").split(";")[0].strip().lower() == FORM:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise malformed() from None
        form = parameters(text)
    return Request(method, path, query, form, lowered)
