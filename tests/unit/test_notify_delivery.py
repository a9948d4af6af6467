"""Retry decisions, Retry-After, and how endpoints are named, without the network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.adapters.notify.delivery import (
    DeliveryError,
    RetryLater,
    RetryPolicy,
    check_status,
    check_url,
    endpoint,
    retry_after,
    with_retries,
)

POLICY = RetryPolicy(attempts=4, total_seconds=30, first_delay=1, max_delay=4)


class Attempts:
    """An attempt that fails with the given errors, in order, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def test_retry_after_in_seconds() -> None:
    assert retry_after("7") == 7.0


def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= (retry_after(format_datetime(when, usegmt=True)) or 0) <= 30


def test_retry_after_in_the_past_or_unreadable() -> None:
    assert retry_after("Sat, 01 Jan 2000 00:00:00 GMT") == 0.0
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_transient_failures_are_retried_with_backoff_until_success() -> None:
    waits: list[float] = []
    attempt = Attempts(RetryLater("HTTP 503"), RetryLater("HTTP 502"))

    with_retries("teams", attempt, POLICY, sleep=waits.append)

    assert attempt.calls == 3
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2


def test_retry_after_is_honoured_over_backoff() -> None:
    waits: list[float] = []
    with_retries("slack", Attempts(RetryLater("HTTP 429", after=3)), POLICY, sleep=waits.append)
    assert waits == [3]


def test_a_permanent_failure_is_not_retried() -> None:
    attempt = Attempts(DeliveryError("slack", "HTTP 400", status=400, permanent=True))
    with pytest.raises(DeliveryError, match="slack: permanent failure: HTTP 400"):
        with_retries("slack", attempt, POLICY, sleep=lambda _: None)
    assert attempt.calls == 1


def test_attempts_are_bounded() -> None:
    attempt = Attempts(*[RetryLater("HTTP 503 from https://example.org", status=503)] * 10)
    with pytest.raises(DeliveryError, match=r"webhook: failed: HTTP 503 .*gave up after 4 attempts") as error:
        with_retries("webhook", attempt, POLICY, sleep=lambda _: None)
    assert attempt.calls == 4
    assert (error.value.status, error.value.permanent) == (503, False)


def test_a_wait_past_the_time_budget_gives_up_at_once() -> None:
    waits: list[float] = []
    with pytest.raises(DeliveryError, match=r"waiting 3600\.0s more would pass the 30s budget"):
        with_retries("teams", Attempts(RetryLater("HTTP 429", after=3600)), POLICY, sleep=waits.append)
    assert waits == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_worth_retrying(status: int) -> None:
    with pytest.raises(RetryLater) as error:
        check_status("teams", "https://example.org", status, {"Retry-After": "2"}, "")
    assert (error.value.status, error.value.after) == (status, 2.0)


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 410])
def test_other_answers_are_permanent(status: int) -> None:
    with pytest.raises(DeliveryError, match=f"slack: permanent failure: HTTP {status} from https://hooks.slack.com"):
        check_status("slack", "https://hooks.slack.com", status, {}, "invalid_payload")


def test_endpoint_keeps_scheme_and_host_only() -> None:
    url = "https://user:pw@prod-1.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=SECRET"
    assert endpoint(url) == "https://prod-1.westus.logic.azure.com:443"
    assert endpoint("https://hooks.slack.com/services/T0/B0/SECRET") == "https://hooks.slack.com"


def test_webhook_urls_must_be_https_except_on_loopback() -> None:
    assert check_url("X", "http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    with pytest.raises(ValueError, match="MLOPS_NOTIFY_SLACK_URL must be an https URL") as error:
        check_url("MLOPS_NOTIFY_SLACK_URL", "http://hooks.slack.com/services/T0/B0/SECRET")
    assert "SECRET" not in str(error.value)
