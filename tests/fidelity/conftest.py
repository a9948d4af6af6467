"""Fidelity fixtures: the local service on loopback TLS with fresh state, as in the contract tests."""

from tests.contract.conftest import certificates, credential, fake, service

__all__ = ["certificates", "credential", "fake", "service"]
