"""The storage clients read the environment's proxy and CA settings per request only when it has some."""

from __future__ import annotations

import pytest

from shared.adapters.storage.clients import blob_service, queue_service
from shared.settings import Settings

SETTINGS = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})


def env_settings_used(fast: bool) -> tuple[bool, bool]:
    blob, queue = blob_service(SETTINGS, fast=fast), queue_service(SETTINGS, fast=fast)
    return blob._pipeline._transport._use_env_settings, queue._pipeline._transport._use_env_settings  # type: ignore[attr-defined]


@pytest.mark.parametrize("fast", [False, True])
def test_without_proxy_or_ca_settings_requests_leave_the_environment_alone(monkeypatch, fast: bool) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert env_settings_used(fast) == (False, False)


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "no_proxy", "REQUESTS_CA_BUNDLE"])
def test_a_proxy_or_ca_bundle_in_the_environment_applies_as_before(monkeypatch, name: str) -> None:
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert env_settings_used(fast=True) == (True, True)
