"""A generic webhook signed per the Standard Webhooks specification (standardwebhooks.com).

Each delivery carries `webhook-id` (the same for every attempt of one notification, so
receivers can de-duplicate), `webhook-timestamp` (the attempt's Unix time) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. The secret
is `whsec_` followed by the base64 of 24 to 64 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

from shared.adapters.notify.delivery import HttpChannel, RetryPolicy
from shared.domain.notification import Notification

PREFIX = "whsec_"


class WebhookChannel(HttpChannel):
    """Posts the notification as signed JSON: `{"type", "timestamp", "data"}`."""

    name = "webhook"
    setting = "MLOPS_NOTIFY_WEBHOOK_URL"

    def __init__(self, url: str, secret: str, policy: RetryPolicy | None = None) -> None:
        super().__init__(url, policy)
        self._key = secret_key(secret)

    def send(self, notification: Notification) -> None:
        body = payload(notification)
        msg_id = message_id(notification)
        # The timestamp is the attempt's, so each retry is signed afresh.
        self.post(body, lambda: signed_headers(self._key, msg_id, int(time.time()), body))


def payload(notification: Notification) -> bytes:
    """The body, serialised once: the bytes signed are the bytes sent."""
    data = notification.document()
    document = {"type": notification.kind, "timestamp": data["time"], "data": data}
    return json.dumps(document, separators=(",", ":")).encode()


def message_id(notification: Notification) -> str:
    """A stable webhook id for the notification; the spec wants no '.' in it, decision ids have some."""
    return "msg_" + hashlib.sha256(notification.id.encode()).hexdigest()[:32]


def signed_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + signature(key, msg_id, timestamp, body),
    }


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key from a `whsec_<base64>` secret; the error never repeats the secret."""
    problem = "MLOPS_NOTIFY_WEBHOOK_SECRET must be 'whsec_' followed by the base64 of 24 to 64 random bytes"
    if not secret.startswith(PREFIX):
        raise ValueError(problem + " (the 'whsec_' prefix is missing)")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except binascii.Error:
        raise ValueError(problem + " (the rest is not base64)") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(problem + f" (it decodes to {len(key)} bytes)")
    return key
