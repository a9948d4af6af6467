"""The storage clients read the environment per request only when it sets a proxy; else once, when built."""

from __future__ import annotations

import pytest

from shared.adapters.storage.clients import blob_service, queue_service
from shared.settings import Settings

SETTINGS = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})


NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def transports(fast: bool) -> list:
    return [blob_service(SETTINGS, fast=fast)._pipeline._transport,  # type: ignore[attr-defined]
            queue_service(SETTINGS, fast=fast)._pipeline._transport]  # type: ignore[attr-defined]


@pytest.mark.parametrize("fast", [False, True])
def test_without_a_proxy_requests_leave_the_environment_alone(fast: bool) -> None:
    assert [transport._use_env_settings for transport in transports(fast)] == [False, False]
    assert [transport.connection_config.verify for transport in transports(fast)] == [True, True]


def test_a_ca_bundle_in_the_environment_is_read_once_and_verifies_every_request(monkeypatch) -> None:
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/corporate.pem")
    assert [transport._use_env_settings for transport in transports(True)] == [False, False]
    assert [transport.connection_config.verify for transport in transports(True)] == ["/etc/ssl/corporate.pem"] * 2


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "no_proxy"])
def test_a_proxy_in_the_environment_applies_per_request_as_before(monkeypatch, name: str) -> None:
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert [transport._use_env_settings for transport in transports(True)] == [True, True]
