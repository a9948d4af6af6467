"""Ops notifications: one model, several channels, one delivery per decision and channel."""

from shared.notify.delivery import DeliveryError, RetryPolicy
from shared.notify.notification import Kind, Notification, Severity, Table
from shared.notify.notifier import CHANNEL_NAMES, Channel, Notifier, NotifyError

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
