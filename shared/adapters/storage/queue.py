"""Work queues on Azure Storage queues, created on first use.

Messages are JSON, base64-encoded as the Functions queue trigger expects by default
(`host.json` keeps `messageEncoding: base64`).
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient, QueueServiceClient

# A Storage queue message holds 64 KiB; base64 makes 3 bytes 4, so 48 KiB of JSON fit. The
# margin leaves room for what a re-delivery adds to an item.
MAX_MESSAGE_BYTES = 48 * 1024 - 1024
# The longest a message may stay invisible (the service allows 7 days; nothing here waits that long).
MAX_DELAY_SECONDS = 24 * 3600


class MessageTooLarge(ValueError):
    """The work item does not fit in one queue message (put it elsewhere and queue a reference)."""


def encode(item: dict[str, Any]) -> bytes:
    """The message body of a work item (before base64)."""
    return json.dumps(item).encode()


def fits(item: dict[str, Any]) -> bool:
    """Whether the work item fits in one queue message."""
    return len(encode(item)) <= MAX_MESSAGE_BYTES


class WorkQueue:
    """Send JSON work items to one queue."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        self.name = name
        self._client: QueueClient = service.get_queue_client(
            name, message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy()
        )
        self._ready = False

    @property
    def client(self) -> QueueClient:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                self._client.create_queue()
            self._ready = True
        return self._client

    def send(self, item: dict[str, Any], delay_seconds: float = 0) -> None:
        """Queue the item, visible after `delay_seconds` (rounded up to whole seconds)."""
        body = encode(item)
        if len(body) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(f"work item is {len(body)} bytes, over the queue's {MAX_MESSAGE_BYTES}")
        delay = min(MAX_DELAY_SECONDS, max(0, math.ceil(delay_seconds)))
        self.client.send_message(body, visibility_timeout=delay or None)
