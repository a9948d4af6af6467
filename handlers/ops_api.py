"""The admin HTTP API: one HTTP function per path of `shared.ops.routes.ROUTES`.

Each function only hands its request to `shared.ops.http.serve`, which picks the route
by method and verifies the caller's Entra ID token; the same table is what `GET ops/openapi.json`
describes. The host asks for the function key only on machines' routes (health): a key names no
person, so people's routes are anonymous to the host and the app verifies who calls. Routes and function
names start with `ops`, since the Functions host keeps `admin` for its own API.
"""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from shared.ops.http import serve
from shared.ops.route import Route
from shared.ops.routes import by_function

bp = func.Blueprint()


def _trigger(name: str, routes: list[Route]) -> Callable[[func.HttpRequest], func.HttpResponse]:
    def trigger(req: func.HttpRequest) -> func.HttpResponse:
        return serve(routes, req)

    trigger.__name__ = trigger.__qualname__ = name
    trigger.__doc__ = "; ".join(f"{route.method}: {route.summary}" for route in routes)
    return trigger


for _name, _routes in by_function().items():
    bp.function_name(_name)(
        bp.route(route=_routes[0].path, auth_level=func.AuthLevel.FUNCTION if _routes[0].key else
                 func.AuthLevel.ANONYMOUS)(_trigger(_name, _routes))
    )
