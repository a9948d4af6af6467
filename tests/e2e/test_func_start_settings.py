"""docs/local.md's "Under `func start`" command, run as printed (plus free ports and a workdir of its own, the
only words added): it starts the local Azure ML service, writes this run's app settings into
`local.settings.json`, and the app's azure-ai-ml adapter, given nothing but those Values (as `func start` gives
them to the worker), reaches the service with its own identity. Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devhost.azurite import free_port
from devhost.waiting import patience, wait_until
from tests.e2e.conftest import user_shell

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# The adapter, in a process whose environment is the settings file's Values and nothing of the test's.
PROBE = """
from shared.adapters.azureml.adapter import AzureMLPlatform
from shared.settings import Settings
import os
platform = AzureMLPlatform.from_settings(Settings.from_environ(os.environ))
print(platform.get_endpoint("prod", "credit-risk").provisioning_state)
"""


def printed_command() -> list[str]:
    """The command docs/local.md prints under "Under `func start`", its continuation lines joined."""
    text = (ROOT / "docs" / "local.md").read_text()
    found = re.search(r"\n    (python -m devhost\.localaml --settings .*?)\n\n", text, re.S)
    assert found, "docs/local.md prints the command"
    return shlex.split(found.group(1).replace("\\\n", " "))


def test_the_func_start_command_writes_settings_the_app_reaches_the_service_with(tmp_path: Path) -> None:
    command = printed_command()
    assert command[:5] == ["python", "-m", "devhost.localaml", "--settings", "local.settings.json"]
    port, entra_port = free_port(), free_port()
    extra = ["--port", str(port), "--entra-port", str(entra_port), "--workdir", str(tmp_path / ".localaml")]
    environ = {**user_shell(), "PYTHONPATH": str(ROOT)}
    service = subprocess.Popen([sys.executable, *command[1:], *extra], cwd=tmp_path, env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    settings = tmp_path / "local.settings.json"
    try:
        wait_until(lambda: service.poll() is not None or (settings.exists() and "MLOPS_AZUREML_ENDPOINT" in
                                                          settings.read_text()), timeout=180)
        assert service.poll() is None, service.stdout.read() if service.stdout else ""
        values = json.loads(settings.read_text())["Values"]
        assert values["MLOPS_AZUREML_ENDPOINT"].startswith(f"https://127.0.0.1:{port}")
        assert str(entra_port) in values["AZURE_AUTHORITY_HOST"]
        assert settings.stat().st_mode & 0o777 == 0o600, "it holds the app's client secret"

        probe = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                               env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **values},
                               timeout=120 * patience())
        assert probe.returncode == 0, probe.stderr[-3000:]
        assert probe.stdout.strip() == "Succeeded"
    finally:
        service.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            service.wait(timeout=60 * patience())
        finally:
            service.kill()
    assert service.returncode == 0
