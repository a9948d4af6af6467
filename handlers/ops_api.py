"""The admin HTTP API: one HTTP function per path of `shared.ops.paths.FUNCTIONS`.

Each function only hands its request to `shared.ops.http.serve`, which picks the route of
`shared.ops.routes.ROUTES` by method and verifies the caller's Entra ID token; the same table is what
`GET ops/openapi.json` describes. The host asks for the function key only on machines' routes (health):
a key names no person, so people's routes are anonymous to the host and the app verifies who calls.
Routes and function names start with `ops`, since the Functions host keeps `admin` for its own API.

The functions are registered from the light table of paths and import the route table (handlers,
models, OpenAPI, storage) on their first request: a cold start indexes the app without it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

from shared.ops.paths import FUNCTIONS

if TYPE_CHECKING:
    from shared.ops.route import Route

bp = func.Blueprint()


@functools.cache
def routes_of(name: str) -> list[Route]:
    """The routes HTTP function `name` serves, from the full table (imported on the first request)."""
    from shared.ops.routes import by_function

    return by_function()[name]


def _trigger(name: str, path: str) -> Callable[[func.HttpRequest], func.HttpResponse]:
    def trigger(req: func.HttpRequest) -> func.HttpResponse:
        from shared.ops.http import serve

        return serve(routes_of(name), req)

    trigger.__name__ = trigger.__qualname__ = name
    trigger.__doc__ = f"/api/{path}: the routes of `shared.ops.routes.ROUTES` on this path."
    return trigger


for _function in FUNCTIONS:
    bp.function_name(_function.name)(
        bp.route(route=_function.path, auth_level=func.AuthLevel.FUNCTION if _function.key else
                 func.AuthLevel.ANONYMOUS)(_trigger(_function.name, _function.path))
    )
