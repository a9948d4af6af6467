"""The light table the function app registers the admin API from is the full route table's projection."""

from __future__ import annotations

import azure.functions as func

from handlers import ops_api
from shared.ops.paths import FUNCTIONS
from shared.ops.routes import by_function


def test_the_light_table_is_what_the_route_table_derives_names_paths_and_key_flags() -> None:
    derived = [(name, routes[0].path, routes[0].key) for name, routes in by_function().items()]
    assert [tuple(function) for function in FUNCTIONS] == derived


def test_each_registered_function_serves_its_routes_of_the_full_table() -> None:
    app = func.FunctionApp()
    app.register_functions(ops_api.bp)
    registered = {
        f.get_function_name(): (f.get_bindings()[0].route, f.get_bindings()[0].auth_level) for f in app.get_functions()
    }
    assert registered == {
        function.name: (function.path, func.AuthLevel.FUNCTION if function.key else func.AuthLevel.ANONYMOUS)
        for function in FUNCTIONS
    }
    for function in FUNCTIONS:
        assert ops_api.routes_of(function.name) == by_function()[function.name]
