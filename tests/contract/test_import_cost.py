"""The function app must stay light to import: `azure.ai.ml` is loaded only when the adapter is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("azure.ai.ml", "azure.identity")


@pytest.mark.parametrize("module", ["function_app", "shared.platform.azureml"])
def test_importing_leaves_azure_ai_ml_unloaded(module: str) -> None:
    """Each in a fresh interpreter, since this test process has loaded everything already."""
    probe = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing {module} loaded {result.stdout.strip()}"
