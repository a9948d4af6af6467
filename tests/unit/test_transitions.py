"""Each state machine's table (`TRANSITIONS`) against the moves the unit tests really drive: every entry is
driven by at least one test, and no test drives a move outside the table, so the table is neither
untested nor incomplete.

The machines' and their controllers' test files run once, in a subprocess, with the plugin
`tests/unit/transitions_recorder.py` recording each move made through the machines' functions, whoever
calls them: what the tests do, never what they are named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.domain import lifecycle, rollout
from shared.domain.records import Stage
from shared.domain.transitions import Transition
from tests.unit.transitions_recorder import RECORD_TO

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ("test_lifecycle_machine.py", "test_review_machine.py", "test_rollout_machine.py",
            "test_lifecycle_controller.py", "test_review_controller.py", "test_rollout_clock.py")
TABLES = {"lifecycle": lifecycle.TRANSITIONS, "rollout": rollout.TRANSITIONS}
Key = tuple[str, str, str, str]  # machine, source, target, trigger


def keys(tables: dict[str, tuple[Transition, ...]]) -> set[Key]:
    return {(machine, str(t.source), str(t.target), t.trigger) for machine, table in tables.items() for t in table}


def undriven(tables: dict[str, tuple[Transition, ...]], driven: dict[Key, list[str]]) -> set[Key]:
    """The entries no test drove."""
    return keys(tables) - set(driven)


def outside(tables: dict[str, tuple[Transition, ...]], driven: dict[Key, list[str]]) -> set[Key]:
    """The moves tests drove that their machine's table does not have."""
    return set(driven) - keys(tables)


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> dict[Key, list[str]]:
    """The moves the recorded test files drive, each with the tests that drove it."""
    if RECORD_TO in os.environ:  # run under the recorder after all: never record recursively
        pytest.skip("the recording run itself")
    record = tmp_path_factory.mktemp("transitions") / "driven.json"
    environ = {name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"}
    # Without the installed plugins (hypothesis, schemathesis, xdist): these files need none, and loading
    # them took three quarters of the run.
    environ.update({RECORD_TO: str(record), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.unit.transitions_recorder",
         *(f"tests/unit/{name}" for name in RECORDED)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {(m["machine"], m["source"], m["target"], m["trigger"]): m["tests"] for m in json.loads(record.read_text())}


def test_every_entry_of_each_machine_s_table_is_driven_by_a_unit_test(driven: dict[Key, list[str]]) -> None:
    missing = undriven(TABLES, driven)
    assert not missing, "no unit test drives: " + "; ".join(" ".join(key) for key in sorted(missing))


def test_no_unit_test_drives_a_move_outside_its_machine_s_table(driven: dict[Key, list[str]]) -> None:
    extra = outside(TABLES, driven)
    assert not extra, "moves missing from the tables: " + "; ".join(
        f"{' '.join(key)} (by {driven[key][0]})" for key in sorted(extra))


def test_an_entry_no_test_drives_and_a_move_the_table_lacks_are_both_found(driven: dict[Key, list[str]]) -> None:
    """The two checks can fail: a table with an entry nobody drives, and one short of a driven entry."""
    never = Transition(Stage.REJECTED, Stage.PROMOTED, "promoted", "no code path promotes a rejected version")
    longer = {**TABLES, "lifecycle": (*lifecycle.TRANSITIONS, never)}
    assert undriven(longer, driven) - undriven(TABLES, driven) == {("lifecycle", "rejected", "promoted", "promoted")}

    dropped = lifecycle.TRANSITIONS[0]
    shorter = {**TABLES, "lifecycle": lifecycle.TRANSITIONS[1:]}
    assert outside(shorter, driven) - outside(TABLES, driven) == {
        ("lifecycle", str(dropped.source), str(dropped.target), dropped.trigger)}


def test_moves_made_through_the_controller_and_the_engine_are_recorded_as_well(driven: dict[Key, list[str]]) -> None:
    """The recorder sees every caller, not only tests that call a machine's function themselves."""
    expired = driven[("lifecycle", "awaiting_review", "expired", "review_waiting")]
    assert any(test.startswith("tests/unit/test_review_controller.py::") for test in expired)
    retired = driven[("rollout", "succeeded", "retired", "advance")]
    assert any(test.startswith("tests/unit/test_rollout_clock.py::") for test in retired)


def test_each_table_names_only_its_machine_s_states_and_has_no_entry_twice() -> None:
    states = {"lifecycle": {str(stage) for stage in Stage},
              "rollout": {str(state) for state in rollout.State} | {rollout.RETIRED}}
    for machine, table in TABLES.items():
        assert {str(t.source) for t in table} | {str(t.target) for t in table} <= states[machine], machine
        assert len(keys({machine: table})) == len(table), f"{machine}: an entry is listed twice"


def test_the_docs_give_each_table_s_size() -> None:
    text = " ".join(" ".join((ROOT / "docs" / page).read_text(encoding="utf-8").split())
                    for page in ("architecture.md", "tests.md"))
    lifecycle_size, rollout_size = len(lifecycle.TRANSITIONS), len(rollout.TRANSITIONS)
    assert f"{lifecycle_size} for the lifecycle, {rollout_size} for the rollout" in text
    assert f"(all {lifecycle_size + rollout_size}, and no move outside them)" in text


def test_the_recording_run_leaves_this_file_out() -> None:
    assert Path(__file__).name not in RECORDED
    assert all((ROOT / "tests" / "unit" / name).is_file() for name in RECORDED)
