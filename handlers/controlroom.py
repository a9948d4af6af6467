"""The control room's HTTP functions: the page (function key) and its static files.

The files' function needs no key because a browser cannot send one with `<script src>`
and the key must stay out of URLs other than the page's own; see `shared.ops.controlroom`.
"""

from __future__ import annotations

import azure.functions as func

from shared.bootstrap import services
from shared.ops import controlroom

bp = func.Blueprint()


@bp.function_name("ops_controlroom")
@bp.route(route="ops/controlroom", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def ops_controlroom(req: func.HttpRequest) -> func.HttpResponse:
    """GET: the control room page (open it with ?code=<function key>)."""
    return controlroom.page(req.headers, services().settings.admin_role)


@bp.function_name("ops_controlroom_asset")
@bp.route(route="ops/controlroom/{asset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ops_controlroom_asset(req: func.HttpRequest) -> func.HttpResponse:
    """GET: one of the control room's script, style or icon files."""
    return controlroom.asset(req.route_params.get("asset", ""), req.headers, services().settings.admin_role)
