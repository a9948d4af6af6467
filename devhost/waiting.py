"""The one way tests, the demo and the local stack wait for something to come true: poll an observable
fact until it holds, and fail naming what was awaited and the last value seen.

Timeouts are written for one test on an idle machine. `WAIT_PATIENCE` (a number, default 1) stretches
every one of them: `./dev test` sets 3, since six workers on two cores run everything up to four times
slower. Stretching costs nothing while tests pass; it only delays the report of a real failure.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited did not come true in time."""


def patience() -> float:
    """How much longer than written every timeout lasts: `WAIT_PATIENCE`, a number from 1 to 20."""
    raw = os.environ.get("WAIT_PATIENCE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"WAIT_PATIENCE must be a number from 1 to 20, not {raw!r}") from None
    if not 1 <= value <= 20:
        raise ValueError(f"WAIT_PATIENCE must be a number from 1 to 20, not {raw!r}")
    return value


def wait_until(probe: Callable[[], T], timeout: float = 30, interval: float = 0.2, what: str = "") -> T:
    """Call `probe` until it returns something truthy, and return that value.

    The probe is called at least once, and once more at the deadline, so a short timeout never fails
    without a look. Exceptions from the probe are not swallowed: a probe that can fail for a while
    (a service still starting) catches its own. On timeout, `WaitTimeout` says what was awaited
    (`what`, or else the probe's source) and the probe's last value. The timeout is stretched by
    `patience()`.
    """
    stretch = patience()
    deadline = time.monotonic() + timeout * stretch
    while True:
        value = probe()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"gave up after {timeout * stretch:g} s{_stretched(timeout, stretch)} waiting for "
                              f"{what or describe(probe)}; last value: {_short(value)}")
        time.sleep(min(interval, left))


def _stretched(timeout: float, stretch: float) -> str:
    return f" ({timeout:g} s x patience {stretch:g})" if stretch != 1 else ""


def describe(probe: Callable[..., object]) -> str:
    """A probe's source on one line (a lambda's is its call's), or its name when the source is not at hand."""
    try:
        source = " ".join(inspect.getsource(probe).split())
    except (OSError, TypeError):
        return getattr(probe, "__qualname__", repr(probe))
    return _cut(source, 300)


def _short(value: object) -> str:
    return _cut(repr(value), 500)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
