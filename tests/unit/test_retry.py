"""The platform retry wrapper: transient faults and throttling, honouring Retry-After."""

from __future__ import annotations

import pytest

from shared.adapters.retry import RetryingPlatform
from shared.domain.ports import Transient, TryLater


class Flaky:
    """A platform whose get_model fails with the given errors first."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    def get_model(self, location: str, name: str, version: str) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"{location}/{name}:{version}"


def test_transient_faults_are_retried_with_backoff() -> None:
    slept: list[float] = []
    platform = Flaky(Transient("503"), Transient("503"))
    result = RetryingPlatform(platform, sleep=slept.append).get_model("dev", "m", "1")
    assert result == "dev/m:1" and platform.calls == 3 and slept == [0.5, 1.0]


def test_throttling_waits_as_long_as_retry_after_says() -> None:
    slept: list[float] = []
    RetryingPlatform(Flaky(TryLater("429", retry_after=3)), sleep=slept.append).get_model("dev", "m", "1")
    assert slept == [3]


def test_busy_without_retry_after_is_left_to_the_caller() -> None:
    platform = Flaky(TryLater("endpoint is Updating"))
    with pytest.raises(TryLater):
        RetryingPlatform(platform, sleep=lambda _: None).get_model("dev", "m", "1")
    assert platform.calls == 1


def test_it_gives_up_after_the_last_attempt() -> None:
    platform = Flaky(*[Transient("503")] * 5)
    with pytest.raises(Transient):
        RetryingPlatform(platform, attempts=4, sleep=lambda _: None).get_model("dev", "m", "1")
    assert platform.calls == 4
