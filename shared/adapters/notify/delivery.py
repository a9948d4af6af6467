"""Delivering one notification on one channel: timeouts, retries, clear failures.

A channel makes attempts; each attempt either succeeds, raises `RetryLater` (429, 5xx,
timeout, connection error: worth another try, perhaps after the server's Retry-After)
or raises `DeliveryError` (anything else: retrying cannot help). `with_retries` runs
the attempts with exponential backoff and jitter, within a number of attempts and a
total time budget, and ends in success or one `DeliveryError` naming the channel.
`HttpChannel` is the base of the channels that POST to a webhook URL.

Webhook URLs carry their secret (Slack's path, the Workflows `sig` query parameter),
so messages name an endpoint by scheme and host only (`where`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class DeliveryError(Exception):
    """A channel could not deliver; `permanent` when retrying cannot help (a 4xx other than 429)."""

    def __init__(self, channel: str, reason: str, *, status: int | None = None, permanent: bool = False) -> None:
        kind = "permanent failure" if permanent else "failed"
        super().__init__(f"{channel}: {kind}: {reason}")
        self.channel = channel
        self.reason = reason
        self.status = status
        self.permanent = permanent


class RetryLater(Exception):
    """One attempt failed in a way worth retrying; `after` is the server's Retry-After, in seconds."""

    def __init__(self, reason: str, *, status: int | None = None, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.after = after


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a channel tries: bounded attempts and total time, per-request timeouts."""

    attempts: int = 5
    total_seconds: float = 60.0
    first_delay: float = 0.5
    max_delay: float = 20.0
    connect_timeout: float = 5.0
    read_timeout: float = 15.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so that many senders do not retry in step."""
        ceiling = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def with_retries(
    channel: str, attempt: Callable[[], None], policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Run `attempt` until it succeeds; raise `DeliveryError` when it fails for good or the budget ends."""
    deadline = time.monotonic() + policy.total_seconds
    for number in range(1, policy.attempts + 1):
        try:
            attempt()
            return
        except RetryLater as error:
            if number == policy.attempts:
                raise DeliveryError(
                    channel, f"{error.reason} (gave up after {number} attempts)", status=error.status
                ) from None
            delay = error.after if error.after is not None else policy.backoff(number)
            if time.monotonic() + delay > deadline:
                raise DeliveryError(
                    channel,
                    f"{error.reason} (gave up after {number} attempts: waiting {delay:.1f}s more "
                    f"would pass the {policy.total_seconds:.0f}s budget)",
                    status=error.status,
                ) from None
            sleep(delay)


def headers_of(response: object) -> Mapping[str, str]:
    """An answer's headers. azure-core types an error's response by a protocol that leaves them out, though the
    response of every transport has them."""
    headers = getattr(response, "headers", None)
    return headers if headers is not None else {}


def check_status(channel: str, where: str, status: int, headers: Mapping[str, str], text: str) -> None:
    """Classify an HTTP answer: return on 2xx, `RetryLater` on 408 / 429 / 5xx, `DeliveryError` otherwise."""
    if 200 <= status < 300:
        return
    detail = " ".join(text.split())[:200]
    reason = f"HTTP {status} from {where}" + (f": {detail}" if detail else "")
    if status in (408, 429) or status >= 500:
        raise RetryLater(reason, status=status, after=retry_after(headers.get("Retry-After")))
    raise DeliveryError(channel, reason, status=status, permanent=True)


class HttpChannel:
    """A channel that POSTs to a webhook URL (the URL is its secret), with retries."""

    name: str
    setting: str  # the app setting that holds the URL, for errors

    def __init__(self, url: str, policy: RetryPolicy | None = None) -> None:
        self._url = check_url(self.setting, url)
        self._policy = policy or RetryPolicy()
        self._session = requests.Session()

    def post(self, body: bytes, headers: Callable[[], Mapping[str, str]] = dict) -> None:
        """POST `body` until accepted; `headers` are made afresh for each attempt."""
        with_retries(self.name, lambda: self._attempt(body, headers()), self._policy)

    def _attempt(self, body: bytes, headers: Mapping[str, str]) -> None:
        """One POST, classified. Redirects are not followed: a moved webhook is a configuration error."""
        where = endpoint(self._url)
        try:
            response = self._session.post(
                self._url,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=(self._policy.connect_timeout, self._policy.read_timeout),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            # The exception's text names the full URL, secret included: keep only its type. A timeout
            # may follow a delivery that did arrive; receivers de-duplicate (webhook-id, event id).
            raise RetryLater(f"{type(error).__name__} talking to {where}") from None
        text = response.text.replace(self._url, where)
        check_status(self.name, where, response.status_code, response.headers, text)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def endpoint(url: str) -> str:
    """The URL's scheme and host, safe to log: webhook URLs carry their secret in the path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def check_url(setting: str, url: str) -> str:
    """Refuse a webhook URL that is not https (plain http is allowed on loopback, for local runs)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return url
    raise ValueError(f"{setting} must be an https URL (http only on localhost), got {endpoint(url)!r}")
