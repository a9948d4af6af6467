"""End-to-end fixtures: the local host in its own process, on a really started Azurite."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite
from devhost.entra import LocalEntraStack, running_local_entra
from devhost.process import HostProcess
from localaml.tls import Certificates, make_certificates
from tests.e2e import people

RUN = re.compile(r"(Executing|Executed) 'Functions\.(\w+)'")


class HostRuns:
    """The runs of the host's functions from now on, read from its log: what a test waits for instead of
    sleeping "long enough for a few ticks" (see `runs_of`)."""

    def __init__(self, host: HostProcess) -> None:
        if host.log_file is None:
            raise ValueError("the host has no log file to read its runs from")
        self.log_file = host.log_file
        self.offset = self.log_file.stat().st_size

    def runs_of(self, function: str) -> int:
        """How many runs of `function` both started and ended since this object was made (one that was
        already running then is not counted: it may have read the state from before)."""
        with self.log_file.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode("utf-8", "replace")
        started, ended = False, 0
        for phase, name in RUN.findall(text):
            if name != function:
                continue
            if phase == "Executing":
                started = True
            elif started:
                started, ended = False, ended + 1
        return ended


@pytest.fixture(scope="session")
def entra_certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """The certificates the bare hosts' stand-in serves with (a browser accepts its server certificate)."""
    return make_certificates(tmp_path_factory.mktemp("entra-tls"))


@pytest.fixture(scope="session")
def entra(entra_certificates: Certificates) -> Iterator[LocalEntraStack]:
    """The local Entra ID stand-in for bare hosts (a full stack starts its own with the local Azure ML service)."""
    with running_local_entra(entra_certificates) as running:
        yield running


@pytest.fixture
def host_settings(azurite: Azurite, entra: LocalEntraStack) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        **people.host_settings(entra),
        "AzureWebJobsStorage": azurite.connection_string,
        "MLOPS_STATE_CONTAINER": f"state-{suffix}",
        "MLOPS_RESYNC_SCHEDULE": "0 0 0 1 1 *",
        "MLOPS_ROLLOUT_SCHEDULE": "0 0 0 1 1 *",
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00.2",
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.5",
    }


@pytest.fixture
def host(host_settings: dict[str, str], tmp_path: Path) -> Iterator[HostProcess]:
    emptied_queues(host_settings["AzureWebJobsStorage"])
    with HostProcess(host_settings, tmp_path / "keys.json", log_file=tmp_path / "host.log") as process:
        yield process


def emptied_queues(connection_string: str) -> None:
    """Empty every queue on the worker's shared Azurite before a host starts on it. The queues' names are the
    app's, not the test's: a message an earlier test's host left (a poisoned item its poison trigger had not
    set aside yet when it stopped) would otherwise be this host's, and be set aside in this test's state."""
    service = QueueServiceClient.from_connection_string(connection_string)
    for queue in service.list_queues():
        service.get_queue_client(queue.name).clear_messages()


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
      on_no_evidence: roll_back
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


def user_shell() -> dict[str, str]:
    """The environment of a person's shell: none of what earlier tests in this worker set for their clients
    (azure-ai-ml's current cloud, a CA bundle, a proxy), which a person running the command does not have."""
    kept = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CI", "WAIT_PATIENCE")
    return {name: os.environ[name] for name in kept if name in os.environ}
