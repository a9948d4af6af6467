"""The control room: a page over the admin API, served by the function app itself.

The page and its files hold no data and no secret, so the host serves them to anyone
(`GET /api/ops/controlroom`). The page signs its user in with Entra ID (MSAL.js, authorization
code with PKCE, redirect flow, where `GET ops/signin` says) and calls the API with their access
token; what it shows them to do is what their token's roles allow (the API decides). No key or
token ever appears in a URL: the authorization code comes back in the redirect's fragment, which
MSAL.js removes from the address bar. Every answer forbids inline script, framing and referrers;
scripts may talk to this app and the sign-in authority only.

MSAL.js is `@azure/msal-browser`'s UMD build, vendored here byte for byte at the version
package-lock.json pins (`python -m tools.vendor_msal` copies it from node_modules; the function
app deploys without node_modules), with its licence beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import azure.functions as func

from shared.ops.respond import correlation_id, error_response

FOLDER = Path(__file__).parent
PAGE = "index.html"
MSAL_SCRIPT = "msal-browser.min.js"
MSAL_LICENSE = "msal-browser.LICENSE"
ASSETS: dict[str, str] = {
    MSAL_SCRIPT: "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def page(authority: str) -> func.HttpResponse:
    """The control room's HTML; its scripts may reach this app and `authority` (where people sign in)."""
    return _file(PAGE, "text/html; charset=utf-8", authority, cache="no-store")


def asset(name: str, headers: Mapping[str, str], authority: str) -> func.HttpResponse:
    """One of the page's files by name; any other name is a 404, whatever it holds."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return _error(404, f"the control room has no file named {name[:100]!r}", "asset", headers)
    return _file(name, content_type, authority, cache="no-cache")


def security_headers(authority: str) -> dict[str, str]:
    """The headers of every answer; `connect-src` lets MSAL.js reach the authority's discovery and token endpoints.

    Nothing else is needed: MSAL.js evaluates no code, its redirects are top-level navigations (which
    the CSP does not govern), and it never frames the authority because the page asks it for tokens
    from its cache and refresh token only (no hidden iframe: `frame-src` stays `'self'`)."""
    origin = "/".join(authority.split("/")[:3])
    policy = CONTENT_SECURITY_POLICY.replace("default-src 'self';", f"default-src 'self'; connect-src 'self' {origin};")
    return {**SECURITY_HEADERS, "Content-Security-Policy": policy}


def _file(name: str, content_type: str, authority: str, cache: str) -> func.HttpResponse:
    return func.HttpResponse(
        (FOLDER / name).read_bytes(), status_code=200, mimetype=content_type.split(";")[0],
        headers={**security_headers(authority), "Content-Type": content_type, "Cache-Control": cache},
    )


def _error(status: int, message: str, field: str | None, headers: Mapping[str, str]) -> func.HttpResponse:
    """Every HTTP route's error shape (`shared.ops.respond`), with this page's security headers."""
    return error_response(status, message, field, correlation_id(headers),
                          {**SECURITY_HEADERS, "Content-Type": "application/json", "Cache-Control": "no-store"})
