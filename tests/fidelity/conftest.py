"""Fidelity fixtures: the local service on loopback TLS with fresh state, as in the contract tests."""

from tests.contract.conftest import certificates, cloud, credential, entra, fake, platform_settings, service

__all__ = ["certificates", "cloud", "credential", "entra", "fake", "platform_settings", "service"]
