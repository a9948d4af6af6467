"""Test fixtures shared by every layer: a really started Azurite, per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite, running_azurite
from shared.settings import Settings
from shared.storage.state import BlobStateStore

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with running_azurite() as instance:
        yield instance


@pytest.fixture
def settings(azurite: Azurite) -> Settings:
    """Settings on Azurite with a fresh state container per test."""
    suffix = uuid.uuid4().hex[:8]
    return Settings.from_environ(
        {
            "AzureWebJobsStorage": azurite.connection_string,
            "MLOPS_STATE_CONTAINER": f"state-{suffix}",
        }
    )


@pytest.fixture
def state(settings: Settings) -> BlobStateStore:
    service = BlobServiceClient.from_connection_string(settings.storage_connection or "")
    return BlobStateStore(service, settings.state_container)
