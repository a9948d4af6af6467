"""The layers of `shared/`: the domain is pure (no Azure SDK, nothing outside itself), the reactor and the
adapters build on it, never the other way round."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "shared" / "domain"

# Run in a fresh interpreter in which the Azure SDK, ONNX Runtime and pyarrow cannot be imported at all.
WITHOUT_AZURE = """
import importlib, importlib.abc, pkgutil, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("azure", "onnxruntime", "pyarrow", "azurefunctions"):
            raise ImportError(f"{name} may not be imported by the domain")
        return None

sys.meta_path.insert(0, Refuse())
import shared.domain
for module in pkgutil.iter_modules(shared.domain.__path__):
    importlib.import_module(f"shared.domain.{module.name}")
print(sorted(name for name in sys.modules if name.startswith("shared.")))
"""


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_the_domain_imports_in_a_process_where_azure_cannot_be_imported() -> None:
    run = subprocess.run([sys.executable, "-c", WITHOUT_AZURE], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    loaded = ast.literal_eval(run.stdout)
    assert "shared.domain.lifecycle" in loaded and "shared.domain.rollout" in loaded
    assert all(name.startswith("shared.domain") for name in loaded), loaded


def test_the_domain_imports_nothing_of_the_app_outside_itself() -> None:
    outside = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in DOMAIN.rglob("*.py")
        for module in _imports(path)
        if module.split(".")[0] in ("shared", "handlers", "devhost", "localaml", "tools")
        and not module.startswith("shared.domain")
    }
    assert not outside


def test_the_blocker_really_refuses_azure() -> None:
    """The first test would prove nothing if the child could import azure after all."""
    probe = WITHOUT_AZURE.split("import shared.domain")[0] + "import azure.core\n"
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode != 0 and "may not be imported by the domain" in run.stderr
