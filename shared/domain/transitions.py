"""A state machine's transitions as data.

Each machine declares its table (`TRANSITIONS` in `shared.domain.lifecycle` and `shared.domain.rollout`):
every move it can make, and no other. `tests/unit/test_transitions.py` records the moves the unit tests
drive and checks both ways: every entry is driven at least once, and nothing outside the table is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Transition:
    """One move: from `source` to `target` (the same for a move that stays, such as a reminder), made by
    `trigger`, the machine's function the I/O layer calls (`act:<action>` for an admin's action on a
    rollout), in the case `when` names."""

    source: str
    target: str
    trigger: str
    when: str
