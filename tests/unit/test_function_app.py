"""The function app, indexed the way the Functions Python worker indexes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import pytest

from devhost.indexing import IndexingError, index_function_app

ROOT = Path(__file__).resolve().parents[2]


def _fresh_app_module():
    """Import function_app anew, so this test sees exactly what the worker would."""
    sys.modules.pop("function_app", None)
    import function_app

    return function_app


def test_one_function_register_whose_parameters_match_their_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = func.FunctionApp.get_functions

    def counting(self: func.FunctionApp) -> list:
        calls.append(id(self))
        return original(self)

    monkeypatch.setattr(func.FunctionApp, "get_functions", counting)
    module = _fresh_app_module()
    registers = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    assert len(registers) == 1

    functions = index_function_app(module)

    assert len(calls) == 1, "get_functions() must be called once per app object"
    names = {f.name for f in functions}
    assert {"aml_events", "aml_work", "aml_work_poison"} <= names
    for function in functions:
        assert function.trigger["name"] in function.annotations


def test_indexing_refuses_a_parameter_whose_name_differs_from_its_binding() -> None:
    module = type(sys)("broken_app")
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def broken(message: func.QueueMessage) -> None: ...

    module.app = app
    with pytest.raises(IndexingError, match=r"broken: parameters \['message'\] differ from bindings \['msg'\]"):
        index_function_app(module)


def test_importing_the_app_leaves_heavy_modules_out() -> None:
    script = (
        "import sys, json; import function_app; "
        "print(json.dumps([m for m in ('azure.ai.ml', 'onnxruntime', 'pyarrow', 'sklearn') if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# What a cold start must not pay for: the storage SDKs, the app's wiring, the admin API's handlers and
# models, pydantic. Each trigger imports them on its first call (docs/cold-start.md).
DEFERRED = (
    "azure.storage.queue", "azure.data.tables", "pydantic", "shared.bootstrap", "shared.settings",
    "shared.reactor.intake", "shared.adapters.storage.state", "shared.ops.routes", "shared.ops.handlers",
    "shared.ops.http", "shared.domain.records",
)


def test_importing_the_app_defers_the_app_itself_to_the_first_call() -> None:
    script = f"import sys, json; import function_app; print(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
