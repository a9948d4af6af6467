"""Status symbols and colour, as `kubectl argo rollouts get rollout` shows them, on a terminal only.

A state or stage shown to a person gets a symbol (✔ done well, ✖ ended badly, ◐ moving, ‖ waiting for
someone, ○ over) and, painted once the text is laid out, that symbol's colour. Plain text, with no symbol
and no escape code, when the output is not a terminal (a pipe, a file), with `--json`, when `NO_COLOR` is
set to anything (https://no-color.org), or when `TERM` is `dumb`. Tables measure cells before they are
painted, so colour never upsets their alignment.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

GOOD, BAD, MOVING, WAITING, OVER = "✔", "✖", "◐", "‖", "○"
SYMBOLS = {
    # rollouts
    "succeeded": GOOD, "rolled_back": BAD, "failed": BAD, "rolling_back": BAD, "progressing": MOVING,
    "paused": WAITING, "awaiting_approval": WAITING,
    # model versions
    "live": GOOD, "passed": GOOD, "rejected": BAD, "expired": BAD, "testing": MOVING, "promoted": MOVING,
    "rolling_out": MOVING, "awaiting_review": WAITING, "superseded": OVER, "retired": OVER,
    # analyses and checks
    "pass": GOOD, "fail": BAD, "inconclusive": WAITING, "yes": GOOD, "NO": BAD,
}
COLOURS = {GOOD: "32", BAD: "31", MOVING: "34", WAITING: "33", OVER: "2"}  # green, red, blue, yellow, dim
PAINTABLE = re.compile("(" + "|".join(map(re.escape, COLOURS)) + r") (\S+)")

_enabled = False


def use(out: TextIO, as_json: bool = False) -> bool:
    """Turn symbols and colour on for a terminal `out` (unless `NO_COLOR`, `TERM=dumb` or `--json`)."""
    global _enabled
    _enabled = (not as_json and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
                and hasattr(out, "isatty") and out.isatty())
    return _enabled


def off() -> None:
    global _enabled
    _enabled = False


def badge(state: object) -> str:
    """`✔ succeeded` on a terminal, `succeeded` otherwise; an unknown state as it is."""
    text = str(state)
    symbol = SYMBOLS.get(text)
    return f"{symbol} {text}" if _enabled and symbol else text


def paint(text: str) -> str:
    """Colour each badge in laid-out text (only badges carry symbols, and only on a terminal)."""
    if not _enabled:
        return text
    return PAINTABLE.sub(lambda found: f"\x1b[{COLOURS[found[1]]}m{found[0]}\x1b[0m", text)
