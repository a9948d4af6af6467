"""Ports chosen in advance for the local services."""

from __future__ import annotations

import pytest

from devhost import azurite


def test_each_test_worker_draws_ports_from_its_own_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers' stacks once chose the same port; the one that bound it second failed (EADDRINUSE)."""
    monkeypatch.setattr(azurite, "_handed_out", azurite.collections.deque(maxlen=256))
    low = max(1024, azurite._ephemeral_start() - 12_000)
    drawn = {}
    for worker in range(3):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
        drawn[worker] = {azurite.free_port() for _ in range(20)}
        assert {(port - low) % 3 for port in drawn[worker]} == {worker}
    assert len(drawn[0] | drawn[1] | drawn[2]) == 60, "a process never hands out one port twice in a row"


def test_outside_a_parallel_run_every_port_of_the_range_can_be_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "nonsense")
    assert azurite._test_worker() == (0, 1)
    assert {(azurite.free_port() - azurite._ephemeral_start()) % 3 for _ in range(60)} == {0, 1, 2}
