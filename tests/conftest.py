"""Test fixtures shared by every layer: a really started Azurite, per test session; and each test
marked by its layer, the top folder it is in (`pytest -m unit`, `pytest -m "not e2e"`)."""

from __future__ import annotations

import functools
import re
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


# The order parallel workers take the tests in: the longest first (each of these files holds a test of one to
# three minutes), then the layers from the slowest, so that the short tests fill the gaps at the end.
LONGEST_FIRST = ("e2e/test_faults.py", "e2e/test_webhook_fuzz.py", "e2e/test_by_hand.py", "e2e/test_ops_fuzz.py",
                 "e2e/test_walkthrough.py", "e2e/test_rollout.py", "e2e/test_lifecycle.py")
SLOWEST_FIRST = ("e2e", "contract", "fidelity", "integration", "infra", "unit")
SHARED_FIXTURE = re.compile(r'@pytest\.fixture\(scope="(module|package)"')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its layer (a test outside every layer's folder is an error, so none goes unmarked),
    and order them slowest layers first."""
    for item in items:
        path = Path(item.path)
        layer = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if layer not in LAYERS:
            raise pytest.UsageError(f"{path}: a test must live in one of tests/{{{','.join(LAYERS)}}}")
        item.add_marker(layer)
    items.sort(key=_schedule_order)


def _schedule_order(item: pytest.Item) -> tuple[int, int]:
    path = Path(item.path).relative_to(TESTS)
    longest = LONGEST_FIRST.index(path.as_posix()) if path.as_posix() in LONGEST_FIRST else len(LONGEST_FIRST)
    return longest, SLOWEST_FIRST.index(path.parts[0])


@functools.cache  # the scheduler asks once per test
def shares_module_fixtures(test_file: Path) -> bool:
    """Whether the file, or a conftest.py above it under tests/, defines a module- or package-scoped fixture
    (a stack, a service) that its tests share."""
    sources = [test_file, *(folder / "conftest.py" for folder in test_file.parents if folder.is_relative_to(TESTS))]
    return any(source.is_file() and SHARED_FIXTURE.search(source.read_text(encoding="utf-8")) for source in sources)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent from runs that load no plugins
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """For parallel runs (`./dev test`, pytest-xdist): every test is scheduled on its own, except that the tests
    of a file sharing a module fixture go to one worker together, so that the fixture starts once.

    (pytest-xdist's `xdist_group` marker cannot do this under pytest 9: it renames node ids through an
    attribute pytest no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    root = Path(str(config.rootpath))

    class ByFileWhereShared(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return file if shares_module_fixtures(root / file) else nodeid

    return ByFileWhereShared(config, log)  # type: ignore[arg-type]


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
