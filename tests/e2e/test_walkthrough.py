"""The README's by-hand walkthrough, followed as a user would on a fresh copy of the repo: `./dev host
--review` in one shell, then in another `./dev register` (alice registers), `./dev send samples/events`,
`.venv/bin/python -m opsctl login` (device code: its page opened in the browser, the code entered, bob
signs in) and `.venv/bin/python -m opsctl lifecycles`, then the control room at the URL the host printed,
in headless chromium: bob signs in on the local Entra ID's page with the password the README gives,
approves the version waiting for review, and it goes live there with its endpoint's traffic.

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
from tests.e2e.test_controlroom_browser import bar, confirm, js, press, sign_in_as, start_browser, until, view

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
LINKED = (".venv", "node_modules")  # what `./dev` sets up once; linked, not copied
CLIENT_ENVIRONMENT = ("AZUREML_CURRENT_CLOUD", "MLOPS_API_URL", "MLOPS_FUNCTION_KEY", "MLOPS_KEY_FILE",
                      "EVENTGRID_KEY", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "NO_PROXY", "OPSCTL_CONFIG_DIR",
                      "OPSCTL_CREDENTIAL")
PROMPT = re.compile(r"open the page (\S+) and enter the code (\S+) to authenticate")


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
        self.process = subprocess.Popen(command, cwd=cwd, env=user_environment(cwd), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
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


def user_environment(repo: Path) -> dict[str, str]:
    """A user's shell: none of this process's client settings, and a home of their own (opsctl keeps its
    sign-in there)."""
    env = {name: value for name, value in os.environ.items() if name not in CLIENT_ENVIRONMENT}
    env["HOME"] = str(repo.parent / "home")
    return env


def run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=user_environment(cwd), capture_output=True, text=True, timeout=300)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Path, Shell]]:
    """`./dev host` in the copy, on free ports; stopped with Ctrl-C."""
    repo = fresh_copy(tmp_path / "repo")
    (tmp_path / "home").mkdir()
    shell = Shell(repo, "./dev", "host", "--review", "--port", str(free_port()), "--azureml-port", str(free_port()),
                  "--storage-port", str(free_pair()), "--entra-port", str(free_port()))
    try:
        yield repo, shell
    finally:
        shell.stop()


def test_the_by_hand_walkthrough_ends_with_the_model_live_in_the_control_room(host: tuple[Path, Shell]) -> None:
    repo, shell = host
    control_room = wait_until(lambda: shell.printed(r"control room\s+(\S+)") or shell.process.poll() is not None,
                              timeout=180, what="./dev host to print the control room's URL")
    assert shell.process.poll() is None, "\n".join(shell.lines)
    url = control_room[1]
    authority = wait_until(lambda: shell.printed(r"Entra ID \(local\)\s+(https://\S+)/"), timeout=10)[1]
    assert (repo / ".localdev" / "connection.json").exists(), "./dev register and opsctl read it"
    assert shell.printed(r"people\s+alice@contoso.test .*bob \(approves\).*password is <name>-local-password")

    registered = run(repo, "./dev", "register")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    found = re.search(r"registered credit-risk:(\d+) in dev .* as alice", registered.stdout)
    assert found, registered.stdout
    version = found[1]
    sent = run(repo, "./dev", "send", "samples/events")
    assert sent.returncode == 0, sent.stdout + sent.stderr

    # A browser that accepts the local Entra ID's certificate, as the README says to (by SPKI, nothing else).
    browser = start_browser(trusted=repo / ".localdev" / "localaml" / "tls" / "server.pem")
    try:
        login = subprocess.Popen([".venv/bin/python", "-m", "opsctl", "login"], cwd=repo, env=user_environment(repo),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert login.stderr is not None
        prompt = PROMPT.search(login.stderr.readline())
        assert prompt, "opsctl login printed no device code prompt"
        browser.get(prompt[1])
        browser.find_element(By.CSS_SELECTOR, "input[name=code]").send_keys(prompt[2])
        browser.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys("bob@contoso.test")
        browser.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys("bob-local-password")
        browser.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
        out, err = login.communicate(timeout=120)
        assert login.returncode == 0, out + err
        # The events are queued and handled within seconds: a user who looks again sees the versions.
        listed = wait_until(lambda: (done := run(repo, ".venv/bin/python", "-m", "opsctl", "lifecycles")
                                     ).returncode == 0 and re.search(rf"credit-risk\s+{version}\b", done.stdout)
                            and done, timeout=60, what="opsctl lifecycles to list the registered version")
        assert "credit-risk" in listed.stdout

        browser.get(url + "#models")
        sign_in_as(browser, authority, "bob@contoso.test", "bob-local-password")
        view(browser, "models")
        approve = f'article[data-review="credit-risk:{version}"] button[data-review-action="approve"]'
        until(browser, f"credit-risk v{version} waiting for bob's review",
              lambda: browser.find_elements(By.CSS_SELECTOR, approve), timeout=120)
        press(browser, approve)
        confirm(browser, "gate table checked")
        walk_to_live(repo, shell, browser, version)
    finally:
        browser.quit()


def walk_to_live(repo: Path, shell: Shell, browser: webdriver.Chrome, version: str) -> None:
    """After bob's approval: the version goes live in the control room and opsctl, and ops are told."""
    until(browser, f"credit-risk v{version} live", lambda: js(
        browser, f"return document.querySelector('article[data-version=\"credit-risk:{version}\"]')?.dataset.stage")
        == "live", timeout=240)
    article = browser.find_element(By.CSS_SELECTOR, f'article[data-version="credit-risk:{version}"]')
    stages = [li.get_attribute("data-stage") for li in article.find_elements(By.CSS_SELECTOR, "ol.stages li")]
    assert stages == ["testing", "passed", "awaiting_review", "promoted", "rolling_out", "live"]
    job = article.find_element(By.CSS_SELECTOR, "dl a")
    assert job.text == f"test-credit-risk-v{version}" and job.get_attribute("href").startswith("https://"), \
        "the test job links to the studio"

    # The samples' drift event retrains the model; its output waits for a review nobody gives here, so the
    # registered version keeps all the live traffic.
    view(browser, "rollouts")
    until(browser, "the endpoint's live traffic on the new version",
          lambda: bar(browser, "live") == {f"credit-risk-v{version}": 100})
    live = run(repo, ".venv/bin/python", "-m", "opsctl", "lifecycles", "--stage", "live")
    assert re.search(rf"credit-risk\s+{version}\s+live", live.stdout), live.stdout + live.stderr
    wait_until(lambda: shell.printed(rf"rollout\.completed .*credit-risk v{version} is live"), timeout=10,
               what="./dev host to print the notification ops got")
