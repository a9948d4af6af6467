"""Work queues on Azure Storage queues, created on first use.

Messages are JSON, base64-encoded as the Functions queue trigger expects by default
(`host.json` keeps `messageEncoding: base64`).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient, QueueServiceClient


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

    def send(self, item: dict[str, Any], delay_seconds: int = 0) -> None:
        self.client.send_message(json.dumps(item).encode(), visibility_timeout=delay_seconds or None)
