"""The notifier: one notification per decision, fanned out to the configured channels.

Upstream delivery is at least once (Event Grid redelivers, the queue retries, resync
repeats a decision), so each (notification, channel) pair has a delivery record in the
state store, `records/notifications/<notification id>.<channel>.json`:

- `sending`: claimed under an ETag before the send, so that two workers handling the
  same decision at once do not both send it;
- `sent`: a redelivery skips the channel;
- `failed`: the next attempt (the queue's retry) sends on that channel again, while the
  channels that succeeded stay done.

A claim older than `claim_seconds` is taken as a worker that died mid-send and taken over.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from shared.adapters import telemetry
from shared.adapters.notify.delivery import DeliveryError, RetryPolicy
from shared.adapters.notify.eventgrid import EventGridChannel
from shared.adapters.notify.log import LogChannel
from shared.adapters.notify.slack import SlackChannel
from shared.adapters.notify.teams import TeamsChannel
from shared.adapters.notify.webhook import WebhookChannel
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Store
from shared.domain.notification import Notification
from shared.domain.ports import Busy
from shared.domain.records import Timestamp
from shared.settings import Settings, SettingsError

CHANNEL_NAMES = ("teams", "slack", "webhook", "eventgrid", "log")
KIND = "notifications"
Outcome = Literal["sent", "already sent", "not configured"]
Status = Literal["sending", "sent", "failed"]

logger = logging.getLogger(__name__)


class Channel(Protocol):
    """Sends a notification somewhere; raises `DeliveryError` when it cannot."""

    name: str

    def send(self, notification: Notification) -> None: ...


class Delivery(BaseModel):
    """The delivery record of one notification on one channel."""

    model_config = ConfigDict(extra="allow")

    notification: str
    kind: str
    channel: str
    status: Status
    attempts: int
    time: Timestamp
    error: str | None = None


class NotifyError(Exception):
    """Some channels failed after every channel was tried; notifying again resumes only those.

    `permanent` when every failure was permanent (retrying the same request cannot help).
    """

    def __init__(self, notification_id: str, failures: Sequence[DeliveryError]) -> None:
        super().__init__(f"notification {notification_id} was not delivered: " + "; ".join(map(str, failures)))
        self.failures = list(failures)
        self.permanent = all(failure.permanent for failure in failures)


class Notifier:
    """The port the reactions notify through."""

    def __init__(self, channels: Sequence[Channel], state: BlobStateStore, claim_seconds: float = 300.0) -> None:
        unknown = [channel.name for channel in channels if channel.name not in CHANNEL_NAMES]
        if unknown:
            raise ValueError(f"unknown notification channels {unknown}: expected names from {CHANNEL_NAMES}")
        self._channels = {channel.name: channel for channel in channels}
        self._deliveries = Store(state, KIND, Delivery)
        self._claim_seconds = claim_seconds

    @classmethod
    def from_settings(cls, settings: Settings, state: BlobStateStore, policy: RetryPolicy | None = None) -> Notifier:
        """The configured channels, plus the log channel, which is always on."""
        channels: list[Channel] = []
        try:
            if settings.notify_teams_url:
                channels.append(TeamsChannel(settings.notify_teams_url, policy))
            if settings.notify_slack_url:
                channels.append(SlackChannel(settings.notify_slack_url, policy))
            if settings.notify_webhook_url:
                if not settings.notify_webhook_secret:
                    raise ValueError("MLOPS_NOTIFY_WEBHOOK_SECRET is required with MLOPS_NOTIFY_WEBHOOK_URL")
                channels.append(WebhookChannel(settings.notify_webhook_url, settings.notify_webhook_secret, policy))
            if settings.notify_eventgrid_endpoint:
                channels.append(
                    EventGridChannel(
                        settings.notify_eventgrid_endpoint, client_id=settings.managed_identity_client_id, policy=policy
                    )
                )
        except ValueError as error:
            raise SettingsError(f"invalid notification settings: {error}") from None
        channels.append(LogChannel())
        return cls(channels, state)

    @property
    def channels(self) -> list[str]:
        """The configured channel names."""
        return [name for name in CHANNEL_NAMES if name in self._channels]

    def notify(self, notification: Notification, channels: Iterable[str] | None = None) -> dict[str, Outcome]:
        """Send on `channels` (None: every configured one; the log always), each at most once.

        Returns each channel's outcome; raises `NotifyError` naming the channels that
        failed, after trying all of them.
        """
        outcomes: dict[str, Outcome] = {}
        failures: list[DeliveryError] = []
        for name in self._select(channels):
            channel = self._channels.get(name)
            if channel is None:
                logger.warning("notification %s: channel %s is not configured, skipped", notification.id, name)
                outcomes[name] = "not configured"
                continue
            try:
                with telemetry.span(f"notify.{name}", kind="client", channel=name, notification=notification.id,
                                    notification_kind=notification.kind, subject=notification.subject) as span:
                    outcomes[name] = self._deliver(notification, channel)
                    span.set(outcome=outcomes[name])
            except DeliveryError as error:
                failures.append(error)
        if failures:
            raise NotifyError(notification.id, failures)
        return outcomes

    def _select(self, channels: Iterable[str] | None) -> list[str]:
        if channels is None:
            return self.channels
        names = list(channels)
        for name in names:
            if name not in CHANNEL_NAMES:
                raise ValueError(f"unknown notification channel {name!r}: expected one of {', '.join(CHANNEL_NAMES)}")
        return [name for name in CHANNEL_NAMES if name in names or name == "log"]

    def _deliver(self, notification: Notification, channel: Channel) -> Outcome:
        key = f"{notification.id}.{channel.name}"
        claimed = self._claim(notification, channel.name, key)
        if claimed is None:
            return "already sent"
        etag, attempts = claimed
        try:
            channel.send(notification)
        except Exception as error:
            # An unexpected error's text may quote a webhook URL: only its type goes into the record.
            failure = error if isinstance(error, DeliveryError) else DeliveryError(
                channel.name, f"unexpected {type(error).__name__}"
            )
            record = _record(notification, channel.name, "failed", attempts, str(failure))
            with contextlib.suppress(Busy):  # a stale-claim takeover: the record is the other worker's now
                self._deliveries.write(key, record, etag)
            if failure is error:
                raise
            raise failure from error
        with contextlib.suppress(Busy):
            self._deliveries.write(key, _record(notification, channel.name, "sent", attempts), etag)
        return "sent"

    def _claim(self, notification: Notification, channel: str, key: str) -> tuple[str, int] | None:
        """Claim the delivery: its ETag and attempt number, or None when it was sent already."""
        found = self._deliveries.read(key)
        etag, attempts = None, 1
        if found:
            record, etag = found
            if record.status == "sent":
                return None
            if record.status == "sending" and (_now() - record.time).total_seconds() < self._claim_seconds:
                raise DeliveryError(channel, f"another worker has been sending it since {record.time.isoformat()}")
            attempts = record.attempts + 1
        try:
            return self._deliveries.write(key, _record(notification, channel, "sending", attempts), etag), attempts
        except Busy:
            raise DeliveryError(channel, "another worker claimed it at the same moment") from None


def _record(notification: Notification, channel: str, status: Status, attempts: int,
            error: str | None = None) -> Delivery:
    return Delivery(notification=notification.id, kind=notification.kind, channel=channel, status=status,
                    attempts=attempts, time=_now(), error=error)


def _now() -> datetime:
    return datetime.now(UTC)
