"""Plain-text tables that fit the terminal: long cells wrap onto more lines, never cut."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Collection, Sequence
from typing import Any

GAP = "  "
MIN_WRAPPED = 16  # a wrapped column narrower than this is harder to read than a long line
WHOLE_WORD = 32  # words up to this long (a deployment=percent pair, a name) are never broken


def terminal_width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None,
          wrap: Collection[int] | None = None) -> str:
    """Aligned columns with a rule under the header, at most `width` wide (the terminal's by default).

    When the natural widths do not fit, the `wrap` columns (the last one by default) share the
    room the others leave and their cells wrap onto more lines; the other columns keep their width.
    """
    width = width or terminal_width()
    wrapping = set(range(len(headers))[-1:] if wrap is None else wrap)
    cells = [[" ".join(str("" if value is None else value).split()) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]
    needed = sum(widths) + len(GAP) * (len(widths) - 1)
    if needed > width and wrapping:
        words = [max([len(word) for row in cells for word in row[i].split()], default=0) for i in range(len(headers))]
        floors = {i: min(widths[i], max(MIN_WRAPPED, len(headers[i]), min(words[i], WHOLE_WORD))) for i in wrapping}
        widths = _shrink(widths, floors, needed - width)

    def lines(values: Sequence[str]) -> list[str]:
        columns = [
            textwrap.wrap(value, widths[i], break_on_hyphens=False) or [""] if i in wrapping else [value]
            for i, value in enumerate(values)
        ]
        height = max(len(column) for column in columns)
        return [
            GAP.join((column[n] if n < len(column) else "").ljust(w) for column, w in zip(columns, widths, strict=True))
            .rstrip()
            for n in range(height)
        ]

    out = [*lines(headers), GAP.join("-" * w for w in widths).rstrip()]
    for row in cells:
        out.extend(lines(row))
    return "\n".join(out)


def _shrink(widths: list[int], floors: dict[int, int], excess: int) -> list[int]:
    """Take `excess` characters from the wrapping columns, widest first, each down to its floor
    (a table that cannot fit above the floors is wider than asked: better than broken words)."""
    widths = list(widths)
    while excess > 0:
        candidates = [i for i in floors if widths[i] > floors[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def split_text(split: dict[str, int] | None) -> str:
    """`blue=90%, green=10%`, sorted by deployment; `-` for none."""
    return ", ".join(f"{name}={percent}%" for name, percent in sorted((split or {}).items())) or "-"


def fields(pairs: Sequence[tuple[str, Any]], width: int | None = None) -> str:
    """`name  value` lines with the values aligned; a long value wraps under itself."""
    label = max((len(name) for name, _ in pairs), default=0) + 2
    room = max((width or terminal_width()) - label, MIN_WRAPPED)
    out = []
    for name, value in pairs:
        wrapped = textwrap.wrap(str(value), room, break_on_hyphens=False) or ["-"]
        out.append(name.ljust(label) + wrapped[0])
        out.extend(" " * label + more for more in wrapped[1:])
    return "\n".join(out)
