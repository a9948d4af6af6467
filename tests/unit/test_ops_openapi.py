"""The OpenAPI document describes every route, from the same table the app registers."""

from __future__ import annotations

import re

import azure.functions as func

from handlers import ops_api
from shared.ops.openapi import document
from shared.ops.routes import ROUTES


def test_every_route_is_in_the_document_with_its_parameters_and_answers() -> None:
    paths = document(ROUTES)["paths"]
    admin = [op for operations in paths.values() for op in operations.values()
             if isinstance(op, dict) and "admin" in op.get("tags", ())]
    assert len(admin) == len(ROUTES)
    for route in ROUTES:
        operation = paths["/" + route.path][route.method.lower()]
        path_params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert path_params == set(re.findall(r"\{(\w+)\}", route.path)), route.path
        assert {"500", str(route.status)} <= set(operation["responses"])
        if route.role is not None:
            assert {"401", "403"} <= set(operation["responses"])
            assert operation["security"] == [{"entra": [route.role.value]}], route.path
        else:
            assert "403" not in operation["responses"] and ("401" in operation["responses"]) == route.key
        assert ("requestBody" in operation) == (route.body is not None)


def test_the_document_is_openapi_3_1_with_the_function_key_scheme_and_resolvable_refs() -> None:
    doc = document(ROUTES)
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["functionKey"] == {
        "type": "apiKey", "in": "header", "name": "x-functions-key"}
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(doc).replace("'", '"')))
    assert refs and refs <= set(doc["components"]["schemas"])
    traffic = doc["components"]["schemas"]["TrafficChange"]
    assert traffic["required"] == ["traffic"] and traffic["additionalProperties"] is False


def test_filters_are_query_parameters_and_names_carry_their_patterns() -> None:
    doc = document(ROUTES)
    audit = {p["name"]: p for p in doc["paths"]["/ops/audit"]["get"]["parameters"]}
    assert set(audit) == {"since", "correlation_id", "subject", "action", "limit", "next"}
    assert audit["limit"]["schema"]["maximum"] == 1000 and not audit["limit"]["required"]
    endpoint = next(p for p in doc["paths"]["/ops/rollouts/{workspace}/{endpoint}"]["get"]["parameters"]
                    if p["name"] == "endpoint")
    assert endpoint["schema"]["pattern"] == "^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$"


def test_the_blueprint_serves_each_path_once_under_ops() -> None:
    app = func.FunctionApp()
    app.register_functions(ops_api.bp)
    functions = {f.get_function_name(): f for f in app.get_functions()}
    routes = {f.get_bindings()[0].route for f in functions.values()}
    assert len(routes) == len(functions) == len({route.path for route in ROUTES})
    assert all(name.startswith("ops_") for name in functions)
    assert all(route.startswith("ops/") for route in routes)
