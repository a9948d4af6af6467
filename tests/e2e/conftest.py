"""End-to-end fixtures: the local host in its own process, on a really started Azurite."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from devhost.azurite import Azurite
from devhost.process import HostProcess

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 30, interval: float = 0.2) -> T:
    """Poll until `probe` returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = probe()
    assert value, f"condition not met within {timeout} s (last value {value!r})"
    return value


@pytest.fixture
def host_settings(azurite: Azurite) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "MLOPS_STATE_CONTAINER": f"state-{suffix}",
        "MLOPS_RESYNC_SCHEDULE": "0 0 0 1 1 *",
        "MLOPS_ROLLOUT_SCHEDULE": "0 0 0 1 1 *",
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00.2",
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.5",
    }


@pytest.fixture
def host(host_settings: dict[str, str], tmp_path: Path) -> Iterator[HostProcess]:
    with HostProcess(host_settings, tmp_path / "keys.json", log_file=tmp_path / "host.log") as process:
        yield process


POLICY = """
rules:
  - name: credit-risk
    models: {{name: "credit-risk*"}}
    source_workspace: dev
    test: {{pipeline: model-test, inputs: {{test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}}}
    gates:
      - {{metric: accuracy, min: 0.80}}
      - {{metric: auc, max_drop: 0.05}}
    promotion: {{path: ["registry:shared"]}}
    rollout:
      workspace: prod
      endpoint: credit-risk
      steps: [10, 50, 100]
      bake_seconds: {bake}
      gates: {{max_error_rate: 0.05, min_requests: {min_requests}}}
      inconclusive_limit: {inconclusive_limit}
      manual_gates: {manual_gates}
      retire_previous_after_seconds: {retire}
    drift:
      monitor: "credit-risk-*"
      threshold: 0.3
      model_monitor: credit-risk-monitor
      pipeline: retrain
      inputs:
        training_data: "azureml://datastores/workspaceblobstore/paths/training-data/"
        outputs.model.name: credit-risk
"""


def write_policy(folder: Path, bake: float = 1, min_requests: int = 10, inconclusive_limit: int = 1000,
                 manual_gates: str = "[]", retire: float = 1) -> Path:
    """A policy for tests: fast bake times, settable gates."""
    path = folder / "policy.yaml"
    path.write_text(POLICY.format(bake=bake, min_requests=min_requests, inconclusive_limit=inconclusive_limit,
                                  manual_gates=manual_gates, retire=retire))
    return path
