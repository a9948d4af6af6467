"""Wires the adapters the handlers use, once per process, from the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.intake import WORK_QUEUE
from shared.settings import Settings, get_settings
from shared.storage.clients import blob_service, queue_service
from shared.storage.queue import WorkQueue
from shared.storage.state import BlobStateStore

if TYPE_CHECKING:
    from shared.platform.port import MLPlatform


@dataclass
class Services:
    """The app's adapters. Heavy ones (the ML platform) are built on first use."""

    settings: Settings
    state: BlobStateStore
    work_queue: WorkQueue
    _platform: MLPlatform | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            state=BlobStateStore(blob_service(settings), settings.state_container),
            work_queue=WorkQueue(queue_service(settings), WORK_QUEUE),
        )

    @property
    def platform(self) -> MLPlatform:
        if self._platform is None:
            self._platform = build_platform(self.settings)
        return self._platform


def build_platform(settings: Settings) -> MLPlatform:
    """The configured ML platform adapter, imported only when first needed."""
    if settings.platform == "azureml":
        from shared.platform.azureml import AzureMLPlatform

        return AzureMLPlatform.from_settings(settings)
    from shared.platform.sandbox import SandboxPlatform

    return SandboxPlatform.from_settings(settings)


@functools.cache
def services() -> Services:
    """The process's services, built on first use."""
    return Services.from_settings(get_settings())
