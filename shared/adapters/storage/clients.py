"""Storage clients for the app's own storage account, from the settings.

Locally a connection string (Azurite's `UseDevelopmentStorage=true`); in Azure the
identity-based `AzureWebJobsStorage__*` settings with the app's managed identity, the
same connection the Functions host uses for its triggers. Clients are built once per
process, by `shared.bootstrap` (and, failing fast, by the Event Grid intake).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, LinearRetry
from azure.storage.queue import LinearRetry as QueueLinearRetry
from azure.storage.queue import QueueServiceClient

from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def _credential(settings: Settings) -> TokenCredential:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.storage_client_id or settings.managed_identity_client_id
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


# Downloads stream in pieces of this size (the SDK's default is 256 KiB). A scoring range
# reads hundreds of MiB, and each piece is a Python iteration that holds the GIL:
# 256 KiB pieces cost ~0.3 core-seconds per 180 MB, 4 MiB pieces a third of that.
READ_PIECE_BYTES = 4 * 1024**2

# The Event Grid intake fails fast: the SDK's defaults (20 s to connect, 60 s to read, 3 retries
# 15 s apart and more) hold a delivery 30-90 s in a storage outage, while Event Grid redelivers
# by itself. One quick retry covers a dropped connection; an outage answers within ~5 s.
FAST_CONNECT_SECONDS = 2
FAST_READ_SECONDS = 5
FAST_RETRIES = 1
FAST_BACKOFF_SECONDS = 0.2


PROXY_SETTINGS = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})
"""The proxy settings `requests` looks for in the environment on every request (names in any case)."""
CA_BUNDLE_SETTINGS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
"""The CA bundle `requests` takes from the environment on every request, the first set."""


def _transport_options() -> dict[str, Any]:
    """Read the environment once, when the clients are built, unless it sets a proxy.

    With `trust_env`, `requests` looks for proxies by scanning the whole environment twice per
    request: about 1.4 ms of CPU (under the GIL) per storage call with a host's environment, half
    of what intake's one call costs (`benchmarks/intake_cost.py`). When the process has no proxy
    setting there is nothing to find, and the one other thing it reads, a CA bundle, is read here
    instead; with a proxy setting, everything applies per request as before. (`trust_env` would
    also read `~/.netrc`, whose Basic credentials would replace the storage request's own
    Authorization header.)
    """
    if any(name.lower() in PROXY_SETTINGS for name in os.environ):
        return {}
    bundle = next((os.environ[name] for name in CA_BUNDLE_SETTINGS if os.environ.get(name)), None)
    return {"use_env_settings": False, **({"connection_verify": bundle} if bundle else {})}


def _fast_options(retry: type) -> dict[str, Any]:
    return {
        "connection_timeout": FAST_CONNECT_SECONDS,
        "read_timeout": FAST_READ_SECONDS,
        "retry_policy": retry(backoff=FAST_BACKOFF_SECONDS, retry_total=FAST_RETRIES, random_jitter_range=0),
    }


def blob_service(settings: Settings, fast: bool = False) -> BlobServiceClient:
    """The blob service; `fast`: short timeouts and one retry (for a caller that has someone to retry it)."""
    options: dict[str, Any] = {"connection_data_block_size": READ_PIECE_BYTES, **_transport_options()}
    if fast:
        options.update(_fast_options(LinearRetry))
    if settings.storage_connection:
        return BlobServiceClient.from_connection_string(settings.storage_connection, **options)
    return BlobServiceClient(settings.storage_blob_uri or "", credential=_credential(settings), **options)


def queue_service(settings: Settings, fast: bool = False) -> QueueServiceClient:
    """The queue service; `fast` as for `blob_service`."""
    options = {**_transport_options(), **(_fast_options(QueueLinearRetry) if fast else {})}
    if settings.storage_connection:
        return QueueServiceClient.from_connection_string(settings.storage_connection, **options)
    return QueueServiceClient(settings.storage_queue_uri or "", credential=_credential(settings), **options)


def table_uri(settings: Settings) -> str:
    """The table service of the app's storage account: `AzureWebJobsStorage__tableServiceUri`, else the blob
    service's with `.table.` for `.blob.` (the account's endpoints differ only there)."""
    if settings.storage_table_uri:
        return settings.storage_table_uri
    return (settings.storage_blob_uri or "").replace(".blob.", ".table.", 1)


def table_service(settings: Settings, fast: bool = False, **options: Any) -> TableServiceClient:
    """The table service that keeps the state index: the connection string locally (Azurite), the app's
    managed identity in Azure, by the same credential as the blob and queue services; `fast` as for
    `blob_service` (azure-core's own retry policy: the tables client exports no LinearRetry)."""
    if fast:
        options = {"connection_timeout": FAST_CONNECT_SECONDS, "read_timeout": FAST_READ_SECONDS,
                   "retry_total": FAST_RETRIES, "retry_backoff_factor": FAST_BACKOFF_SECONDS, **options}
    if settings.storage_connection:
        return TableServiceClient.from_connection_string(settings.storage_connection, **options)
    return TableServiceClient(table_uri(settings), credential=_credential(settings), **options)
