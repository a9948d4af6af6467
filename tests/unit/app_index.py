"""The function app's bindings as the Python worker indexes `function_app.py`, read in a child
process: `get_functions()` may run only once per app object, and other tests index the app too."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def bindings() -> dict[str, list[dict[str, Any]]]:
    """Function name -> its bindings, as the worker reports them to the host."""
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): [b.get_dict_repr() for b in f.get_bindings()]"
        " for f in function_app.app.get_functions()}, default=str))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def http_triggers() -> dict[str, dict[str, Any]]:
    """Function name -> its httpTrigger binding (route, methods, auth level)."""
    return {name: binding for name, found in bindings().items() for binding in found
            if binding["type"] == "httpTrigger"}
