"""Test fixtures shared by every layer: a really started Azurite, per test session; and each test
marked by its layer, the top folder it is in (`pytest -m unit`, `pytest -m "not e2e"`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite, running_azurite
from shared.adapters.storage.state import BlobStateStore
from shared.settings import Settings

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
LAYERS = ("unit", "integration", "e2e", "contract", "fidelity", "infra")


# The order parallel workers take the layers in: the long, mostly waiting tests first, the short ones fill the gaps.
SLOWEST_FIRST = ("e2e", "contract", "fidelity", "integration", "infra", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its layer; a test outside every layer's folder is an error, so none goes unmarked.

    For parallel runs (`./dev test`: pytest-xdist, `--dist loadgroup`) the tests of a file that shares a
    module-scoped fixture (a stack, a service) stay on one worker, so it starts once; every other test is
    scheduled on its own, slowest layers first."""
    for item in items:
        path = Path(item.path)
        layer = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if layer not in LAYERS:
            raise pytest.UsageError(f"{path}: a test must live in one of tests/{{{','.join(LAYERS)}}}")
        item.add_marker(layer)
        if _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(str(path.relative_to(TESTS))))
    items.sort(key=lambda item: SLOWEST_FIRST.index(Path(item.path).relative_to(TESTS).parts[0]))


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(definition.scope in ("module", "package")
               for definitions in info.name2fixturedefs.values() for definition in definitions)


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
