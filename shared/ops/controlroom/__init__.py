"""The control room: a page over the admin API, served by the function app itself.

The page (`GET /api/ops/controlroom?code=<function key>`) is opened the Functions way, with
the key in its own URL; its script reads the key from there and sends it as
`x-functions-key` on every API call, so no other URL carries it. The script and style sheet
are files of this folder, served from a fixed list by their own function: a browser cannot
add a header to `<script src>`, and the key must not travel in their URLs, so that function
needs no key (the files hold no data; with `MLOPS_ADMIN_ROLE` set they need the role too).
Every answer forbids inline script, framing and referrers (the page's URL holds the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import azure.functions as func

from shared.ops import auth
from shared.ops.errors import ApiError
from shared.ops.respond import correlation_id, error_response

FOLDER = Path(__file__).parent
PAGE = "index.html"
ASSETS: dict[str, str] = {
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


def page(headers: Mapping[str, str], admin_role: str | None) -> func.HttpResponse:
    """The control room's HTML, for a caller the key (checked by the host) and the role let in."""
    return _file(PAGE, "text/html; charset=utf-8", headers, admin_role, cache="no-store")


def asset(name: str, headers: Mapping[str, str], admin_role: str | None) -> func.HttpResponse:
    """One of the page's files by name; any other name is a 404, whatever it holds."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return _error(404, f"the control room has no file named {name[:100]!r}", "asset", headers)
    return _file(name, content_type, headers, admin_role, cache="no-cache")


def _file(name: str, content_type: str, headers: Mapping[str, str], admin_role: str | None,
          cache: str) -> func.HttpResponse:
    try:
        auth.authorize(headers, admin_role)
    except ApiError as refused:
        return _error(refused.status, refused.message, refused.field, headers)
    return func.HttpResponse(
        (FOLDER / name).read_bytes(), status_code=200, mimetype=content_type.split(";")[0],
        headers={**SECURITY_HEADERS, "Content-Type": content_type, "Cache-Control": cache},
    )


def _error(status: int, message: str, field: str | None, headers: Mapping[str, str]) -> func.HttpResponse:
    """Every HTTP route's error shape (`shared.ops.respond`), with this page's security headers."""
    return error_response(status, message, field, correlation_id(headers),
                          {**SECURITY_HEADERS, "Content-Type": "application/json", "Cache-Control": "no-store"})
