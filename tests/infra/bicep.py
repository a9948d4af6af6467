"""Read the Bicep templates under infra/ with pycep, the parser checkov itself uses.

pycep turns a template into nested dicts: literals stay Python values, while
references and calls become small trees (`{"operator": {"type": "property_accessor",
...}}`). `expr` folds the trees these tests look at back into Bicep-like text, so
assertions read like the template: `expr(value) == "topic.outputs.endpoint"`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"
Node = Any


@functools.cache
def templates() -> dict[str, dict[str, Any]]:
    """Every template, parsed once, keyed by its path relative to infra/."""
    parser = BicepParser()
    return {str(path.relative_to(INFRA)): parser.parse(file_path=path) for path in sorted(INFRA.rglob("*.bicep"))}


def template(name: str) -> dict[str, Any]:
    return templates()[name]


def body(declaration: dict[str, Any]) -> dict[str, Any]:
    """The `{...}` of a resource or module, whether or not it is in a loop or under an `if`."""
    config = declaration["config"]
    while "loop_type" in config or "condition" in config:
        config = config["config"]
    return config


def resources(resource_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(file, symbol, body) of every declared (not `existing`) resource of one type."""
    for name, parsed in templates().items():
        for symbol, declaration in parsed.get("resources", {}).items():
            if declaration["type"] == resource_type and not declaration["existing"]:
                yield name, symbol, body(declaration)


def resource(file: str, symbol: str) -> dict[str, Any]:
    return body(template(file)["resources"][symbol])


def module(file: str, symbol: str) -> dict[str, Any]:
    return body(template(file)["modules"][symbol])


def variable(file: str, name: str) -> Node:
    return template(file)["variables"][name]["value"]


def expr(node: Node) -> str:
    """A reference, index or call as Bicep text (`a.b.c`, `roles['X']`, `tenant().tenantId`); other
    values as `repr`. pycep does not tell a string literal from a reference, so a call's arguments
    print bare either way: `guid(uniqueName, MLOps.Reader)`."""
    if isinstance(node, dict) and "function" in node:
        function = node["function"]
        arguments = ", ".join(expr(argument) for argument in (function.get("parameters") or {}).values())
        return f"{function['type']}({arguments})"
    if isinstance(node, dict) and "operator" in node:
        operator = node["operator"]
        left, right = operator["operands"].get("operand_1"), operator["operands"].get("operand_2")
        if operator["type"] == "property_accessor":
            return f"{expr(left)}.{expr(right)}"
        if operator["type"] == "index_accessor":
            return f"{expr(left)}[{right!r}]"
    if isinstance(node, str):
        return node
    return repr(node)


def walk(node: Node) -> Iterator[Node]:
    """Every node of a parsed value, depth first."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def role_names(node: Node) -> set[str]:
    """Names looked up in the role table (`roles['Storage Blob Data Owner']`) anywhere in `node`."""
    found = set()
    for item in walk(node):
        if isinstance(item, dict) and item.get("operator", {}).get("type") == "index_accessor":
            operands = item["operator"]["operands"]
            if operands["operand_1"] == "roles":
                found.add(operands["operand_2"])
    return found
