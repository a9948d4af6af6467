"""The local Entra ID stand-in (`localentra/`) stands on its own, held to Entra, never to the app.

None of its modules imports the app, its harness or anything of the repo outside `localentra/`,
but for the certificate files of `localaml.tls` it is served with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_localaml_independent import REPO, ROOT, imported

STAND_IN = ROOT / "localentra"
MODULES = sorted(STAND_IN.rglob("*.py"))
ALLOWED = {"localentra", "localaml.tls"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_the_stand_in_imports_nothing_of_the_repo_but_the_certificates(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    ours = {name for name in imported(path.read_text(encoding="utf-8"), module)
            if name.split(".")[0] in REPO | {"localaml", "localentra"}}
    assert {name for name in ours if name.split(".")[0] != "localentra" and name not in ALLOWED} == set()


def test_the_walk_sees_the_stand_in() -> None:
    assert len(MODULES) >= 10 and STAND_IN / "service.py" in MODULES
    assert {"shared", "devhost", "handlers", "opsctl", "localaml"} <= REPO | {"localaml"}
