"""An Event Grid custom topic: the app's own decisions as CloudEvents 1.0.

Types are `AmlReactor.<Kind>` (`model.rejected` -> `AmlReactor.ModelRejected`), the
source `/aml-reactor`, the subject the model, endpoint or job, the id the decision id
(the same decision always has the same id, so subscribers can de-duplicate), and the
data the notification document. `azure-eventgrid` and `azure-identity` are imported
when the first event is sent, not when the app starts.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.adapters.notify.delivery import (
    RetryLater,
    RetryPolicy,
    check_status,
    check_url,
    endpoint,
    headers_of,
    with_retries,
)
from shared.domain.notification import Notification

SOURCE = "/aml-reactor"
TYPE_PREFIX = "AmlReactor."


class EventGridChannel:
    """Publishes one CloudEvent per notification with `EventGridPublisherClient`.

    Without `credential` it authenticates as the app's managed identity (user-assigned
    when `client_id` is given) or, outside Azure, the default credential chain. An
    AzureKeyCredential / AzureSasCredential suits a topic with local auth enabled.
    """

    name = "eventgrid"

    def __init__(
        self,
        topic_endpoint: str,
        credential: Any = None,
        client_id: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._endpoint = check_url("MLOPS_NOTIFY_EVENTGRID_ENDPOINT", topic_endpoint)
        self._credential = credential
        self._client_id = client_id
        self._policy = policy or RetryPolicy()
        self._client: Any = None

    def send(self, notification: Notification) -> None:
        event = cloud_event(notification)
        with_retries(self.name, lambda: self._publish(event), self._policy)

    def _publish(self, event: dict[str, Any]) -> None:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        where = endpoint(self._endpoint)
        try:
            # The SDK's own retries are off: `with_retries` retries every channel the same way.
            self._publisher().send(
                event,
                retry_total=0,
                connection_timeout=self._policy.connect_timeout,
                read_timeout=self._policy.read_timeout,
            )
        except ClientAuthenticationError as error:
            if error.response is None or error.status_code is None:  # no token (identity not ready or not configured)
                raise RetryLater(f"no Event Grid token: {str(error.message)[:200]}") from None
            check_status(self.name, where, error.status_code, headers_of(error.response), error.response.text())
        except HttpResponseError as error:
            if error.response is None or error.status_code is None:
                raise RetryLater(f"{type(error).__name__} talking to {where}") from None
            check_status(self.name, where, error.status_code, headers_of(error.response), error.response.text())
        except (ServiceRequestError, ServiceResponseError) as error:
            raise RetryLater(f"{type(error).__name__} talking to {where}") from None

    def _publisher(self) -> Any:
        if self._client is None:
            from azure.eventgrid import EventGridPublisherClient

            _quiet_forwarded_options()
            credential = self._credential or credential_for(self._client_id)
            self._client = EventGridPublisherClient(self._endpoint, credential)
        return self._client


def cloud_event(notification: Notification) -> dict[str, Any]:
    data = notification.document()
    return {
        "specversion": "1.0",
        "id": notification.id,
        "source": SOURCE,
        "type": event_type(notification.kind),
        "subject": notification.subject,
        "time": data["time"],
        "datacontenttype": "application/json",
        "data": data,
    }


def event_type(kind: str) -> str:
    """`rollout.rolled_back` -> `AmlReactor.RolloutRolledBack`."""
    return TYPE_PREFIX + "".join(part.capitalize() for part in re.split(r"[._]", kind))


def credential_for(client_id: str | None) -> Any:
    """The app's managed identity (user-assigned when `client_id` is set), else the default chain."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()


class _ForwardedOptions(logging.Filter):
    """Drops the SDK's warning that per-request options (timeouts, retry_total) are not event fields.

    For basic topics the client forwards `send()` keyword arguments both to the pipeline,
    where they apply, and to its event model, which logs that it ignores them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "is not a known attribute of class" not in str(record.msg)


def _quiet_forwarded_options() -> None:
    logger = logging.getLogger("azure.eventgrid._legacy._generated._serialization")
    if not any(isinstance(f, _ForwardedOptions) for f in logger.filters):
        logger.addFilter(_ForwardedOptions())
