"""Storage clients for the app's own storage account, from the settings.

Locally a connection string (Azurite's `UseDevelopmentStorage=true`); in Azure the
identity-based `AzureWebJobsStorage__*` settings with the app's managed identity, the
same connection the Functions host uses for its triggers. Clients are built once per
process, by `shared.bootstrap`.
"""

from __future__ import annotations

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.settings import Settings


def _credential(settings: Settings):
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.storage_client_id or settings.managed_identity_client_id
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


def blob_service(settings: Settings) -> BlobServiceClient:
    if settings.storage_connection:
        return BlobServiceClient.from_connection_string(settings.storage_connection)
    return BlobServiceClient(settings.storage_blob_uri or "", credential=_credential(settings))


def queue_service(settings: Settings) -> QueueServiceClient:
    if settings.storage_connection:
        return QueueServiceClient.from_connection_string(settings.storage_connection)
    return QueueServiceClient(settings.storage_queue_uri or "", credential=_credential(settings))
