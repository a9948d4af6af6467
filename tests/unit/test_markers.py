"""Every test is marked by its layer, the top folder under tests/, so `pytest -m unit` runs the unit tests only.

Collection runs in a subprocess on the real suite, as `./dev test` and CI collect it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LAYERS, LONGEST_FIRST, shares_module_fixtures

ROOT = Path(__file__).resolve().parents[2]

# Collects the whole suite with `-m unit`, as a developer would select the unit tests, and prints each test's
# node id, whether `-m unit` selected it, and the layer markers it carries: one collection serves both tests.
PRINT_MARKS = """
import sys
import pytest

class Marks:
    def __init__(self):
        self.layers = set(sys.argv[1:])

    def show(self, kind, items):
        for item in items:
            marks = sorted({mark.name for mark in item.iter_markers()} & self.layers)
            print(kind, item.nodeid, ",".join(marks))

    def pytest_deselected(self, items):
        self.show("DESELECTED", items)

    def pytest_collection_finish(self, session):
        self.show("SELECTED", session.items)

sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "unit"], plugins=[Marks()]))
"""


@pytest.fixture(scope="module")
def collected() -> dict[str, list[tuple[str, str]]]:
    """(node id, layer markers) of the tests `-m unit` selected and of those it left out."""
    # Not with a custom cloud another test of this worker left in AZUREML_CURRENT_CLOUD: azure-ai-ml reads
    # it at import, and the subprocess that collects has no such cloud registered.
    env = {name: value for name, value in os.environ.items() if name != "AZUREML_CURRENT_CLOUD"}
    result = subprocess.run([sys.executable, "-c", PRINT_MARKS, *LAYERS], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    found: dict[str, list[tuple[str, str]]] = {"SELECTED": [], "DESELECTED": []}
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in found:
            node, _, marks = rest.rpartition(" ")
            found[kind].append((node, marks))
    return found


def test_each_test_carries_the_marker_of_its_folder_and_no_other_layer(
        collected: dict[str, list[tuple[str, str]]]) -> None:
    marks = dict(collected["SELECTED"] + collected["DESELECTED"])
    assert len(marks) > 300, f"collected only {len(marks)} tests"
    wrong = {node: layer for node, layer in marks.items() if layer != node.split("/")[1]}
    assert not wrong, f"tests marked other than by their folder: {dict(list(wrong.items())[:5])}"
    assert {node.split("/")[1] for node in marks} == set(LAYERS), "a layer has no test: is its folder collected?"


def test_dash_m_unit_selects_the_unit_tests_only(collected: dict[str, list[tuple[str, str]]]) -> None:
    selected = [node for node, _ in collected["SELECTED"]]
    assert any(node.startswith("tests/unit/test_markers.py::") for node in selected)
    outside = [node for node in selected if not node.startswith("tests/unit/")]
    assert not outside, f"-m unit selected tests outside tests/unit: {outside[:5]}"
    assert len(selected) > 300, f"-m unit selected only {len(selected)} tests"
    left_out = [node for node, _ in collected["DESELECTED"]]
    assert left_out and all(not node.startswith("tests/unit/") for node in left_out)


def test_parallel_runs_keep_together_only_the_files_that_share_a_module_fixture() -> None:
    tests = ROOT / "tests"
    assert shares_module_fixtures(tests / "e2e/test_ops_api.py")  # its own module-scoped stack
    assert shares_module_fixtures(tests / "contract/test_azureml_models_jobs.py")  # contract/conftest.py's service
    assert not shares_module_fixtures(tests / "e2e/test_rollout.py")  # a stack per test: scheduled one by one


def test_the_files_scheduled_first_exist() -> None:
    assert [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()] == []
