"""Ops notifications: one model, several channels, one delivery per decision and channel."""

from shared.adapters.notify.delivery import DeliveryError, RetryPolicy
from shared.adapters.notify.notifier import CHANNEL_NAMES, Channel, Notifier, NotifyError
from shared.domain.notification import Kind, Notification, Severity, Table

__all__ = [
    "CHANNEL_NAMES",
    "Channel",
    "DeliveryError",
    "Kind",
    "Notification",
    "Notifier",
    "NotifyError",
    "RetryPolicy",
    "Severity",
    "Table",
]
