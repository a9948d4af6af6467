"""devhost.waiting.wait_until: the one poll-until-true of the tests, the demo and the local stack."""

from __future__ import annotations

import time

import pytest

from devhost.waiting import WaitTimeout, patience, wait_until


@pytest.fixture(autouse=True)
def no_stretch(monkeypatch: pytest.MonkeyPatch) -> None:
    """`./dev test` stretches every timeout; these tests measure the written ones unless they say so."""
    monkeypatch.delenv("WAIT_PATIENCE", raising=False)


def test_returns_the_first_truthy_value_of_the_probe() -> None:
    values = iter([None, [], {"state": "live"}, {"state": "later"}])
    assert wait_until(lambda: next(values), timeout=5, interval=0.001) == {"state": "live"}


def test_a_timeout_names_what_was_awaited_and_the_last_value_seen() -> None:
    seen = iter(range(1_000_000))
    with pytest.raises(WaitTimeout) as raised:
        wait_until(lambda: next(seen) < 0 and "never", timeout=0.05, interval=0.01, what="a negative number")
    message = str(raised.value)
    assert message.startswith("gave up after 0.05 s waiting for a negative number; last value: False")
    assert isinstance(raised.value, TimeoutError), "callers that catch TimeoutError (the demo) still do"


def test_without_a_description_the_timeout_quotes_the_probes_source() -> None:
    stage = {"credit-risk:1": "testing"}
    with pytest.raises(WaitTimeout, match=r'waiting for .*stage\["credit-risk:1"\] == "live".*last value: False'):
        wait_until(lambda: stage["credit-risk:1"] == "live", timeout=0.02, interval=0.01)


def test_the_probe_is_asked_once_more_at_the_deadline() -> None:
    started = time.monotonic()
    calls: list[float] = []

    def probe() -> bool:
        calls.append(time.monotonic() - started)
        return len(calls) == 2

    # An interval longer than the timeout: the second look is at the deadline, and it succeeds.
    assert wait_until(probe, timeout=0.1, interval=10) is True
    assert len(calls) == 2 and 0.09 <= calls[1] < 1, calls


def test_the_probe_is_asked_at_least_once_even_with_no_time() -> None:
    assert wait_until(lambda: "here", timeout=0) == "here"


def test_an_error_in_the_probe_is_not_swallowed() -> None:
    def probe() -> bool:
        raise RuntimeError("the local host exited with 1")

    with pytest.raises(RuntimeError, match="exited with 1"):
        wait_until(probe, timeout=5)


def test_patience_stretches_the_timeout_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAIT_PATIENCE", "3")
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as raised:
        wait_until(lambda: False, timeout=0.05, interval=0.01, what="never")
    assert time.monotonic() - started >= 0.15
    assert str(raised.value).startswith("gave up after 0.15 s (0.05 s x patience 3) waiting for never")


@pytest.mark.parametrize("raw", ["three", "0.5", "0", "-1", "21", "nan", ""])
def test_a_patience_that_is_no_number_from_1_to_20_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("WAIT_PATIENCE", raw)
    with pytest.raises(ValueError, match=f"WAIT_PATIENCE must be a number from 1 to 20, not {raw!r}"):
        patience()
