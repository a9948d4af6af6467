"""Index a Python v2 function app the way the Functions Python worker does.

The worker imports `function_app.py`, requires exactly one `FunctionRegister` in it,
calls `get_functions()` once, and refuses a function whose parameter names differ
from its binding names (in Azure that silently drops the whole app at indexing;
here it is an error that names the function and the parameter).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func


class IndexingError(Exception):
    """The app cannot be indexed; the Functions host would load none of its functions."""


@dataclass(frozen=True)
class IndexedFunction:
    """One function: its name, trigger and bindings as the host sees them, and its code."""

    name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    code: Any
    annotations: dict[str, Any]

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])


def load_app_module(app_dir: Path, module_name: str = "function_app") -> ModuleType:
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    return importlib.import_module(module_name)


def index_function_app(module: ModuleType) -> list[IndexedFunction]:
    """Find the app's one FunctionRegister and turn its functions into host metadata."""
    registers = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(registers) != 1:
        raise IndexingError(f"{module.__name__} must define exactly one FunctionApp; found {len(registers)}")
    indexed = []
    for function in registers[0].get_functions():
        code = function.get_user_function()
        name = function.get_function_name()
        if not name:
            raise IndexingError(f"function {code.__qualname__} has no name")
        bindings = [binding.get_dict_repr() for binding in function.get_bindings()]
        triggers = [binding for binding in bindings if binding["type"].endswith("Trigger")]
        if len(triggers) != 1:
            raise IndexingError(f"function {name} must have exactly one trigger")
        _check_reserved(name, triggers[0])
        _check_parameters(name, code, bindings)
        indexed.append(
            IndexedFunction(
                name=name,
                trigger=triggers[0],
                bindings=bindings,
                code=code,
                annotations=inspect.get_annotations(code, eval_str=True),
            )
        )
    return indexed


def _check_reserved(name: str, trigger: dict[str, Any]) -> None:
    """The host reserves `admin` for its own API: such functions and routes never load in Azure."""
    route = str(trigger.get("route") or name).lstrip("/")
    if name.lower().startswith("admin") or route.lower().startswith("admin"):
        raise IndexingError(f"function {name}: names and routes starting with 'admin' are reserved by the host")


def _check_parameters(name: str, code: Any, bindings: list[dict[str, Any]]) -> None:
    binding_names = {binding["name"] for binding in bindings if binding["name"] != "$return"}
    parameters = set(inspect.signature(code).parameters) - {"context"}
    if parameters != binding_names:
        raise IndexingError(
            f"function {name}: parameters {sorted(parameters)} differ from bindings {sorted(binding_names)}"
        )
