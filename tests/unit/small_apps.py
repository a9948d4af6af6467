"""A small function app in a temporary folder, for the local host's unit tests to load."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_app(folder: Path, source: str) -> Iterator[Path]:
    """`folder` holding `function_app.py` (`source`) and a `host.json`; the repo's own `function_app` module is
    put back afterwards, and `folder` taken off `sys.path` where loading the app put it."""
    (folder / "function_app.py").write_text(textwrap.dedent(source))
    (folder / "host.json").write_text('{"version": "2.0"}')
    own = sys.modules.pop("function_app", None)
    try:
        yield folder
    finally:
        sys.modules.pop("function_app", None)
        if own is not None:
            sys.modules["function_app"] = own
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
