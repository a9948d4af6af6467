"""The README's by-hand walkthrough, followed as a user would on a fresh copy of the repo: `./dev host`
in one shell, then in another `./dev register`, `./dev send samples/events` and
`.venv/bin/python -m opsctl lifecycles`, then the control room at the URL the host printed, in
headless chromium, until the registered version is live there with its endpoint's traffic.

The copy holds the repo's files as a clone would (what `.gitignore` leaves out stays out; the
virtual environment and Azurite's npm folder are linked, as `./dev` would have made them), so
`.localdev/` is the copy's own. The only words added to the README's are the ports: free ones,
given to `./dev host` with its `--port`, `--azureml-port` and `--storage-port` flags.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from devhost.azurite import free_port
from devhost.waiting import wait_until
from tests.e2e.test_by_hand import free_pair
from tests.e2e.test_controlroom_browser import bar, browser, card, js, until, view  # noqa: F401  (browser: fixture)

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
LINKED = (".venv", "node_modules")  # what `./dev` sets up once; linked, not copied
CLIENT_ENVIRONMENT = ("AZUREML_CURRENT_CLOUD", "MLOPS_API_URL", "MLOPS_FUNCTION_KEY", "MLOPS_KEY_FILE",
                      "EVENTGRID_KEY")


def fresh_copy(destination: Path) -> Path:
    """The repo's files as a clone has them: everything but `.git` and what `.gitignore` names."""
    ignored = [line.strip().rstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {name for name in names if name == ".git" or any(fnmatch.fnmatch(name, p) for p in ignored)}

    shutil.copytree(ROOT, destination, ignore=ignore, symlinks=True)
    for name in LINKED:
        (destination / name).symlink_to(ROOT / name, target_is_directory=True)
    return destination


class Shell:
    """A command started in the copy as from a user's shell, whose output is read as it comes."""

    def __init__(self, cwd: Path, *command: str) -> None:
        env = {name: value for name, value in os.environ.items() if name not in CLIENT_ENVIRONMENT}
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def printed(self, pattern: str) -> re.Match[str] | None:
        return next((found for line in list(self.lines) if (found := re.search(pattern, line))), None)

    def stop(self) -> None:
        """Ctrl-C, as the README says; killed only when it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in CLIENT_ENVIRONMENT}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Path, Shell]]:
    """`./dev host` in the copy, on free ports; stopped with Ctrl-C."""
    repo = fresh_copy(tmp_path / "repo")
    shell = Shell(repo, "./dev", "host", "--port", str(free_port()), "--azureml-port", str(free_port()),
                  "--storage-port", str(free_pair()))
    try:
        yield repo, shell
    finally:
        shell.stop()


def test_the_by_hand_walkthrough_ends_with_the_model_live_in_the_control_room(
    host: tuple[Path, Shell], browser: webdriver.Chrome  # noqa: F811
) -> None:
    repo, shell = host
    control_room = wait_until(lambda: shell.printed(r"control room\s+(\S+)") or shell.process.poll() is not None,
                              timeout=180, what="./dev host to print the control room's URL")
    assert shell.process.poll() is None, "\n".join(shell.lines)
    url = control_room[1]
    assert (repo / ".localdev" / "connection.json").exists(), "./dev register and opsctl read it"

    registered = run(repo, "./dev", "register")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    found = re.search(r"registered credit-risk:(\d+) in dev", registered.stdout)
    assert found, registered.stdout
    version = found[1]
    sent = run(repo, "./dev", "send", "samples/events")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    # The events are queued and handled within seconds: a user who looks again sees the versions.
    listed = wait_until(lambda: (done := run(repo, ".venv/bin/python", "-m", "opsctl", "lifecycles")).returncode == 0
                        and re.search(rf"credit-risk\s+{version}\b", done.stdout) and done, timeout=60,
                        what="opsctl lifecycles to list the registered version")
    assert "credit-risk" in listed.stdout

    browser.get(url + "#models")
    until(browser, f"credit-risk v{version} live", lambda: js(
        browser, f"return document.querySelector('article[data-version=\"credit-risk:{version}\"]')?.dataset.stage")
        == "live", timeout=240)
    article = browser.find_element(By.CSS_SELECTOR, f'article[data-version="credit-risk:{version}"]')
    stages = [li.get_attribute("data-stage") for li in article.find_elements(By.CSS_SELECTOR, "ol.stages li")]
    assert stages == ["testing", "passed", "promoted", "rolling_out", "live"]
    job = article.find_element(By.CSS_SELECTOR, "dl a")
    assert job.text == f"test-credit-risk-v{version}" and job.get_attribute("href").startswith("https://"), \
        "the test job links to the studio"

    # The samples' drift event retrains the model, and its output starts a rollout that no client traffic can
    # judge: whatever that rollout shows, the registered version keeps all the live traffic.
    view(browser, "rollouts")
    until(browser, "the endpoint's live traffic on the new version",
          lambda: bar(browser, "live") == {f"credit-risk-v{version}": 100})
    live = run(repo, ".venv/bin/python", "-m", "opsctl", "lifecycles", "--stage", "live")
    assert re.search(rf"credit-risk\s+{version}\s+live", live.stdout), live.stdout + live.stderr
    wait_until(lambda: shell.printed(rf"rollout\.completed .*credit-risk v{version} is live"), timeout=10,
               what="./dev host to print the notification ops got")
