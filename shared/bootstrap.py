"""Wires the adapters the handlers use, once per process, from the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.adapters import telemetry
from shared.adapters.storage.clients import blob_service, queue_service, table_service
from shared.adapters.storage.index import TableIndex, table_name
from shared.adapters.storage.queue import WorkQueue
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Stores
from shared.bindings import WORK_QUEUE
from shared.domain.ports import Clock
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from shared.adapters.notify import Notifier
    from shared.domain.policy import Policy
    from shared.domain.ports import MLPlatform, PredictionLogs, TokenVerifier


def system_clock() -> datetime:
    """The real time, in UTC: the clock of every process but a unit test's."""
    return datetime.now(UTC)


@dataclass
class Services:
    """The app's adapters. The heavier ones are built on first use, not at import."""

    settings: Settings
    state: Stores
    work_queue: WorkQueue
    clock: Clock = field(default=system_clock, repr=False)
    _platform: MLPlatform | None = field(default=None, repr=False)
    _notifier: Notifier | None = field(default=None, repr=False)
    _policy: Policy | None = field(default=None, repr=False)
    _identities: TokenVerifier | None = field(default=None, repr=False)
    _predictions: PredictionLogs | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            state=Stores(BlobStateStore(blob_service(settings), settings.state_container),
                         TableIndex(table_service(settings), table_name(settings.state_container))),
            work_queue=WorkQueue(queue_service(settings), WORK_QUEUE),
        )

    @property
    def platform(self) -> MLPlatform:
        if self._platform is None:
            from shared.adapters.retry import RetryingPlatform

            # Traced inside the retries: each attempt is its own span, so a retried call shows as retried.
            self._platform = RetryingPlatform(telemetry.traced_platform(build_platform(self.settings)))
        return self._platform

    @property
    def predictions(self) -> PredictionLogs:
        """What deployments' data collectors logged (the mirror phase compares predictions with it)."""
        if self._predictions is None:
            from shared.adapters.azureml.collected import CollectedPredictions

            self._predictions = CollectedPredictions.from_settings(self.settings)
        return self._predictions

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:
            from shared.adapters.notify import Notifier

            self._notifier = Notifier.from_settings(self.settings, self.state.blobs)
        return self._notifier

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            from shared.domain.policy import load_policy

            self._policy = load_policy(self.settings.policy_path)
        return self._policy


    @property
    def identities(self) -> TokenVerifier | None:
        """Verifies people's tokens for the app's Entra registration; None when the settings name none."""
        if self._identities is None and self.settings.auth_tenant_id and self.settings.auth_client_id:
            from shared.adapters.identity import EntraTokens

            self._identities = EntraTokens(self.settings.auth_authority, self.settings.auth_tenant_id,
                                           self.settings.auth_client_id)
        return self._identities


def build_platform(settings: Settings) -> MLPlatform:
    """The configured ML platform adapter, imported only when first needed."""
    from shared.adapters.azureml import AzureMLPlatform

    return AzureMLPlatform.from_settings(settings)


@functools.cache
def services() -> Services:
    """The process's services, built on first use."""
    return Services.from_settings(get_settings())
