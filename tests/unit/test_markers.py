"""Every test is marked by its layer, the top folder under tests/, so `pytest -m unit` runs the unit tests only.

Collection runs in a subprocess on the real suite, as `./dev test` and CI collect it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import LAYERS

ROOT = Path(__file__).resolve().parents[2]

# Collects the whole suite and prints each test's node id and the layer markers it carries.
PRINT_MARKS = """
import sys
import pytest

class Marks:
    def pytest_collection_finish(self, session):
        layers = set(sys.argv[1:])
        for item in session.items:
            marks = sorted({mark.name for mark in item.iter_markers()} & layers)
            print("MARKS", item.nodeid, ",".join(marks))

sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"], plugins=[Marks()]))
"""


def collect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_each_test_carries_the_marker_of_its_folder_and_no_other_layer() -> None:
    result = collect("-c", PRINT_MARKS, *LAYERS)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [line.removeprefix("MARKS ") for line in result.stdout.splitlines() if line.startswith("MARKS ")]
    marks = dict(line.rsplit(" ", 1) for line in lines)
    assert len(marks) > 300, f"collected only {len(marks)} tests"
    wrong = {node: layer for node, layer in marks.items() if layer != node.split("/")[1]}
    assert not wrong, f"tests marked other than by their folder: {dict(list(wrong.items())[:5])}"
    assert {node.split("/")[1] for node in marks} == set(LAYERS), "a layer has no test: is its folder collected?"


def test_dash_m_unit_selects_the_unit_tests_only() -> None:
    result = collect("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "unit")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    selected = [line for line in result.stdout.splitlines() if "::" in line]
    assert any(node.startswith("tests/unit/test_markers.py::") for node in selected)
    outside = [node for node in selected if not node.startswith("tests/unit/")]
    assert not outside, f"-m unit selected tests outside tests/unit: {outside[:5]}"
    assert len(selected) > 300, f"-m unit selected only {len(selected)} tests"
