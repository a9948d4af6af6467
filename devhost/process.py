"""Run the local host as a separate process, as Core Tools would, for the demo and tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from devhost.azurite import ROOT, free_port
from devhost.keys import HostKeys
from devhost.waiting import wait_until
from shared.settings import binding_defaults


class HostProcess:
    """`python -m devhost` in a child process, with its own settings and keys.

    That process runs the queue triggers in a process of its own (`devhost.split`), whose output goes to the
    same log, and which stops with it, even when it is killed.
    """

    def __init__(self, settings: dict[str, str], keys_file: Path, port: int = 0, log_file: Path | None = None,
                 root: Path = ROOT) -> None:
        """`root`: the checkout whose app and host run (another revision's, for a before/after benchmark)."""
        self.port, self.root = port or free_port(), root
        self.settings, self.keys_file, self.log_file = settings, keys_file, log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The host's process (the one serving HTTP), while started."""
        return self._process.pid if self._process else None

    @property
    def keys(self) -> HostKeys:
        return HostKeys(**json.loads(self.keys_file.read_text()))

    @property
    def eventgrid_url(self) -> str:
        return f"{self.url}/runtime/webhooks/eventgrid?functionName=aml_events&code={self.keys.eventgrid_extension}"

    def start(self, timeout: float = 30) -> HostProcess:
        HostKeys.load_or_create(self.keys_file)
        # azure-ai-ml records the cloud a client last used in AZUREML_CURRENT_CLOUD and reads it when it is
        # imported: a custom cloud of this process is unknown to the host's, whose import would then fail.
        inherited = {name: value for name, value in os.environ.items() if name != "AZUREML_CURRENT_CLOUD"}
        # The settings bindings read come with their defaults, as local.settings.example.json gives them to Core Tools.
        env = {**binding_defaults(), **inherited, **self.settings, "PYTHONUNBUFFERED": "1"}
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(self.port), "--keys", str(self.keys_file)],
            cwd=self.root, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, timeout=timeout, interval=0.1, what=f"the local host to answer on {self.url}")
        return self

    def _answers(self) -> bool:
        """Whether the started host answers its status route; RuntimeError once its process has exited."""
        if self._process is None:
            raise RuntimeError("the local host was not started")
        if self._process.poll() is not None:
            raise RuntimeError(f"the local host exited with {self._process.returncode}; see {self.log_file}")
        try:
            status = requests.get(f"{self.url}/admin/host/status", params={"code": self.keys.master}, timeout=1)
        except requests.ConnectionError:
            return False
        return status.ok

    def stop(self, kill: bool = False) -> None:
        if self._process and self._process.poll() is None:
            self._process.kill() if kill else self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # work in hand outlasted the grace period, as a host recycle would
                self._process.kill()
                self._process.wait(timeout=15)

    def __enter__(self) -> HostProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
