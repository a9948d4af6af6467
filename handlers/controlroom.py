"""The control room's HTTP functions: the page and its static files.

Both are anonymous to the host: they hold no data and no secret, and the page signs its user in
with Entra ID before it calls the API; see `shared.ops.controlroom`. That and the app's settings are
imported on the first request: a cold start indexes the functions without them (see docs/cold-start.md).
"""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("ops_controlroom")
@bp.route(route="ops/controlroom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ops_controlroom(req: func.HttpRequest) -> func.HttpResponse:
    """GET: the control room page (it signs you in with Entra ID)."""
    from shared.bootstrap import services
    from shared.ops import controlroom

    return controlroom.page(services().settings.auth_authority)


@bp.function_name("ops_controlroom_asset")
@bp.route(route="ops/controlroom/{asset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ops_controlroom_asset(req: func.HttpRequest) -> func.HttpResponse:
    """GET: one of the control room's script, style or icon files."""
    from shared.bootstrap import services
    from shared.ops import controlroom

    return controlroom.asset(req.route_params.get("asset", ""), req.headers, services().settings.auth_authority)
