"""A pytest plugin that records the state machines' moves the tests drive: `-p tests.unit.transitions_recorder`,
with `TRANSITIONS_RECORD` naming the JSON file to write at the end of the session.

For the session it wraps each machine's transition functions (its public functions that take a `record` and
return a `Move`) in their module, so every caller goes through the wrapper: a test, the lifecycle controller,
the rollout engine, the machine itself. A call that moves is recorded as (machine, source, target, trigger)
with the tests that drove it: the source is the given record's state, the target the state of the move's
record. A lifecycle function that returns None, or a rollout function that returns the record unchanged
with nothing to do, did not move. A transition function called by another (`advance` calling `retire`) is
part of the outer call, whose trigger it is. `tests/unit/test_transitions.py` runs the plugin.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared.domain import lifecycle, rollout
from shared.domain.records import Lifecycle, Rollout

RECORD_TO = "TRANSITIONS_RECORD"


@dataclass(frozen=True)
class Machine:
    """How to read one machine's moves: the state of a record it is given, and where a move leads (None:
    it did not move)."""

    name: str
    module: ModuleType
    source: Callable[[Any], str]
    target: Callable[[Any, Any], str | None]


def _lifecycle_target(record: Lifecycle, move: lifecycle.Move | None) -> str | None:
    return None if move is None else str(move.stage)


def _rollout_target(record: Rollout, move: rollout.Move) -> str | None:
    return None if move.record == record and not move.actions else rollout.state_of(move.record)


MACHINES = (
    Machine("lifecycle", lifecycle, lambda record: str(record.stage), _lifecycle_target),
    Machine("rollout", rollout, rollout.state_of, _rollout_target),
)


def transition_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The machine's triggers: its own public functions whose first parameter is `record` and that return a `Move`."""
    found = {}
    for name, function in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != module.__name__:
            continue
        signature = inspect.signature(function)
        if list(signature.parameters)[:1] == ["record"] and "Move" in str(signature.return_annotation):
            found[name] = function
    return found


class Recorder:
    """Wraps the transition functions while the session runs and keeps the moves they make."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.driven: dict[tuple[str, str, str, str], list[str]] = {}
        self.test = ""
        self._calls = threading.local()  # how deep in transition functions each thread is
        self._originals: list[tuple[ModuleType, str, Callable[..., Any]]] = []

    def install(self) -> None:
        for machine in MACHINES:
            for name, function in transition_functions(machine.module).items():
                self._originals.append((machine.module, name, function))
                setattr(machine.module, name, self._wrapped(machine, name, function))

    def uninstall(self) -> None:
        for module, name, function in self._originals:
            setattr(module, name, function)
        self._originals.clear()

    def _wrapped(self, machine: Machine, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._calls, "depth", 0)
            arguments = signature.bind(*args, **kwargs).arguments
            source = machine.source(arguments["record"]) if depth == 0 else ""
            self._calls.depth = depth + 1
            try:
                move = function(*args, **kwargs)
            finally:
                self._calls.depth = depth
            target = machine.target(arguments["record"], move) if depth == 0 else None
            if target is not None:
                action = arguments.get("action")
                trigger = name if action is None else f"{name}:{action}"
                tests = self.driven.setdefault((machine.name, source, target, trigger), [])
                if self.test not in tests:
                    tests.append(self.test)
            return move

        return recorded

    def write(self) -> None:
        moves = [{"machine": machine, "source": source, "target": target, "trigger": trigger, "tests": tests}
                 for (machine, source, target, trigger), tests in sorted(self.driven.items())]
        self.path.write_text(json.dumps(moves, indent=1))


_recorder: Recorder | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _recorder
    if RECORD_TO not in os.environ:
        raise pytest.UsageError(f"{__name__} records to the file that {RECORD_TO} names; it is not set")
    _recorder = Recorder(Path(os.environ[RECORD_TO]))
    _recorder.install()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _recorder is not None:
        _recorder.test = nodeid


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _recorder is not None:
        _recorder.write()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _recorder
    if _recorder is not None:
        _recorder.uninstall()
        _recorder = None
