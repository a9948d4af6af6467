"""The function app must stay light to import: `azure.ai.ml` is loaded only when the adapter is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# The SDK-type blob binding (handlers/scoring.py) imports azure.identity itself (about 40 ms),
# so the app may load it; the adapter alone must not.
@pytest.mark.parametrize(
    ("module", "heavy"),
    [("function_app", ("azure.ai.ml",)), ("shared.adapters.azureml", ("azure.ai.ml", "azure.identity"))],
)
def test_importing_leaves_azure_ai_ml_unloaded(module: str, heavy: tuple[str, ...]) -> None:
    """Each in a fresh interpreter, since this test process has loaded everything already."""
    probe = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing {module} loaded {result.stdout.strip()}"
