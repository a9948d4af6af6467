"""Queue triggers: poll a Storage queue as the Functions host's queue listener does.

Messages are received with a long visibility timeout while they run; on success they
are deleted; on failure they become visible again after host.json's
`visibilityTimeout`, and after `maxDequeueCount` attempts they move to `<queue>-poison`.
Polling backs off to `maxPollingInterval` while the queue is empty.

As the host does, a batch of `batchSize` messages is one Get Messages request, and the next
batch is fetched as soon as the messages in hand fall to `newBatchThreshold` (batchSize/2 by
default on the Consumption and Flex plans), so at most batchSize + newBatchThreshold run at once:
https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as QueueMessageBinding
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    QueueMessage,
)

from devhost.listener import Listener

log = logging.getLogger("devhost.queues")


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the Functions host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    lease_seconds: int = 600

    @classmethod
    def from_host_json(cls, host: dict) -> QueueOptions:
        queues = host.get("extensions", {}).get("queues", {})
        batch_size = int(queues.get("batchSize", 16))
        return cls(
            batch_size=batch_size,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_seconds(queues.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=_seconds(queues.get("maxPollingInterval", "00:01:00")),
        )


def _seconds(timespan: str) -> float:
    hours, minutes, seconds = timespan.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def queue_client(connection_string: str, name: str) -> QueueClient:
    client = QueueClient.from_connection_string(
        connection_string,
        name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


class QueueListener(Listener):
    """Polls one queue and runs its function for each message, until stopped."""

    def __init__(
        self,
        function_name: str,
        client: QueueClient,
        poison: QueueClient,
        run: Callable[[func.QueueMessage], None],
        options: QueueOptions,
    ) -> None:
        super().__init__(f"queue-{function_name}")
        self.function_name = function_name
        self._client, self._poison, self._run, self._options = client, poison, run, options
        self._pool = ThreadPoolExecutor(max_workers=options.batch_size + options.new_batch_threshold,
                                        thread_name_prefix=function_name)
        self._in_hand = 0
        self._fewer = threading.Condition()

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            with self._fewer:
                self._fewer.wait_for(lambda: self._in_hand <= self._options.new_batch_threshold, timeout=1)
                if self._in_hand > self._options.new_batch_threshold:
                    continue
            try:
                size = self._options.batch_size
                messages = list(self._client.receive_messages(
                    messages_per_page=size, max_messages=size, visibility_timeout=self._options.lease_seconds))
            except AzureError as error:
                log.warning("%s: polling failed: %s", self.function_name, error)
                messages = []
            if messages:
                delay = 0.1
                with self._fewer:
                    self._in_hand += len(messages)
                for message in messages:
                    self._pool.submit(self._handle_one, message)
                continue
            self._stop.wait(delay)
            delay = min(delay * 2, self._options.max_polling_interval)

    def _handle_one(self, message: QueueMessage) -> None:
        try:
            self._handle(message)
        except Exception:
            log.exception("%s: message %s could not be handled", self.function_name, message.id)
        finally:
            with self._fewer:
                self._in_hand -= 1
                self._fewer.notify()

    def _handle(self, message: QueueMessage) -> None:
        if _dequeues(message) > self._options.max_dequeue_count:
            self._to_poison(message)
            return
        try:
            self._run(_binding_value(message))
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed, attempt %s)", self.function_name, message.dequeue_count)
            self._after_failure(message)
            return
        with contextlib.suppress(AzureError):
            self._client.delete_message(message)

    def _after_failure(self, message: QueueMessage) -> None:
        if _dequeues(message) >= self._options.max_dequeue_count:
            self._to_poison(message)
            return
        with contextlib.suppress(AzureError):
            self._client.update_message(message, visibility_timeout=int(self._options.visibility_timeout))

    def _to_poison(self, message: QueueMessage) -> None:
        """Copy to the poison queue first, then delete: a crash in between duplicates, never loses."""
        self._poison.send_message(message.content)
        with contextlib.suppress(AzureError):
            self._client.delete_message(message)
        log.error(
            "message %s moved to %s after %s attempts", message.id, self._poison.queue_name, message.dequeue_count
        )


def _binding_value(message: QueueMessage) -> func.QueueMessage:
    return QueueMessageBinding(
        id=message.id,
        body=message.content,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


def _dequeues(message: QueueMessage) -> int:
    """How often the message was received; the SDK types it optional, though a received message always has it."""
    return message.dequeue_count or 0
