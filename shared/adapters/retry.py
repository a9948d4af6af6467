"""Retry platform calls that failed for a passing reason, honouring Retry-After.

Transient faults (5xx, timeouts) and throttling (429, a TryLater that carries
`retry_after`) are retried a few times with exponential backoff inside the call.
A TryLater without `retry_after` (409, endpoint `Updating`) is not retried here: the
caller decides (the rollout tries again on its next tick; a queue item is retried).
NotFound is not retried here either: a model version an event announced and the platform does not
show yet is looked for again by the reaction, minutes later (`NotYetVisible`: the queue delivers the
event again with a growing delay), not by holding this call.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from shared.domain.ports import MLPlatform, Transient, TryLater

log = logging.getLogger(__name__)


class RetryingPlatform:
    """Wraps any MLPlatform; every method call gets the retry policy."""

    def __init__(
        self, platform: MLPlatform, attempts: int = 4, base_delay: float = 0.5, max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._platform, self._attempts = platform, attempts
        self._base_delay, self._max_delay, self._sleep = base_delay, max_delay, sleep

    @property
    def inner(self) -> MLPlatform:
        return self._platform

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._platform, name)
        if not callable(target):
            return target

        @functools.wraps(target)
        def call(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(1, self._attempts + 1):
                try:
                    return target(*args, **kwargs)
                except (Transient, TryLater) as error:
                    retry_after = getattr(error, "retry_after", None)
                    if attempt == self._attempts or (isinstance(error, TryLater) and retry_after is None):
                        raise
                    delay = min(self._max_delay, retry_after or self._base_delay * 2 ** (attempt - 1))
                    log.warning("%s failed (%s); retry %d in %.1f s", name, error, attempt, delay)
                    self._sleep(delay)
            raise AssertionError("unreachable")

        return call
