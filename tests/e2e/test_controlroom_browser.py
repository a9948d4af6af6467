"""The control room in a real browser (Debian's chromium, headless, driven by Selenium) over the
local stack: a rollout followed from its start to its rollback, pressing pause and resume with
their confirmations, then the views of models, audit and events set aside, and the page's
state while the app cannot be reached.

Set CONTROLROOM_SCREENSHOTS to a folder (`docs`) to keep the screenshots of the main views
there (`python -m tools.screenshots` does); they go to the test's temporary folder otherwise."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from devhost.azurite import Azurite
from devhost.stack import Stack, TrafficGenerator, local_stack
from localaml import samples
from tests.e2e.test_webhook import post, registered_event

pytestmark = pytest.mark.e2e

MODEL = "credit-risk"
CARD = 'article[data-rollout="prod.credit-risk"]'
POLICY = """
rules:
  - name: credit-risk
    models: {name: "credit-risk*"}
    source_workspace: dev
    test: {pipeline: model-test, inputs: {test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}
    gates:
      - {metric: accuracy, min: 0.80}
      - {metric: auc, max_drop: 0.05}
    promotion: {path: ["registry:shared"]}
    rollout:
      workspace: prod
      endpoint: credit-risk
      mirror: {percent: 20, bake_seconds: 3}
      steps: [10, 50, 100]
      # long enough for the test to see the 10% step and break v2 before the step's analysis can pass,
      # on a loaded machine too (at 4 s a slow page let it pass on to the manual gate)
      bake_seconds: 12
      gates: {max_error_rate: 0.05, max_latency_p95_ms: 2000, min_requests: 20}
      inconclusive_limit: 1000
      manual_gates: [50]
      retire_previous_after_seconds: 1
    notify: {default: [log]}
  - name: fraud
    models: {name: "fraud*"}
    source_workspace: dev
    test: {pipeline: model-test, inputs: {test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}
    review: {four_eyes: false}
    promotion: {path: ["registry:shared"]}
    notify: {default: [log]}
"""
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1360,1000")


def chromium() -> tuple[str, str]:
    """Debian's chromium and its driver; their absence fails the test (it never skips)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("the control room's browser test needs Debian's chromium and its driver: "
                    "apt-get install -y chromium chromium-driver (.ci/run installs them in CI)")
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("CONTROLROOM_SCREENSHOTS")
    folder = Path(wanted).resolve() if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def js(driver: webdriver.Chrome, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def until(driver: webdriver.Chrome, what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    """Wait for `probe` to return something truthy in the page; fail naming what was awaited."""
    def check(_: Any) -> Any:
        try:
            return probe()
        except StaleElementReferenceException:  # the page redrew between finding and reading
            return None
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(check)
    except TimeoutException:
        console = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        pytest.fail(f"the control room did not show {what} within {timeout} s; it shows:\n"
                    + js(driver, "return document.querySelector('main').innerText")[:3000]
                    + "\nbrowser console errors: " + ("\n".join(console) or "none"))


def rollout_field(driver: webdriver.Chrome, field: str) -> str:
    return js(driver, f"const card = document.querySelector('{CARD}');"
                      f"return card ? card.querySelector('[data-field={field}]').textContent : ''")


def card(driver: webdriver.Chrome) -> dict[str, str]:
    """The rollout card's deployment, state and phase, as the page drew them."""
    return js(driver, f"const card = document.querySelector('{CARD}');"
                      "return card ? {deployment: card.dataset.deployment, state: card.dataset.state, "
                      "phase: card.dataset.phase} : {}")


def under_way(shown: dict[str, str]) -> bool:
    return shown.get("deployment") == "credit-risk-v2" and shown.get("state") == "progressing" \
        and shown.get("phase") in ("mirror", "step")


def bar(driver: webdriver.Chrome, kind: str) -> dict[str, int]:
    """The deployments and percents drawn in one of the card's bars."""
    parts = js(driver, f"return [...document.querySelectorAll('{CARD} svg.bar-{kind} rect.bar-part')]"
                       ".map(r => [r.dataset.deployment, Number(r.dataset.percent)])")
    return dict(parts)


def press(driver: webdriver.Chrome, selector: str) -> None:
    """Click what the selector finds, again if the page redrew it in between."""
    def click(_: Any) -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except StaleElementReferenceException:
            return False
    WebDriverWait(driver, 10, poll_frequency=0.1).until(click)


def confirm(driver: webdriver.Chrome, reason: str) -> str:
    """Read the confirmation's text, give the reason and confirm; returns what it said would happen."""
    until(driver, "the confirmation", lambda: js(driver, "return document.getElementById('confirm').open"), 10)
    said = driver.find_element(By.ID, "confirm-text").text
    driver.find_element(By.ID, "confirm-reason").send_keys(reason)
    driver.find_element(By.ID, "confirm-ok").click()
    until(driver, "the confirmation closed", lambda: not js(driver, "return document.getElementById('confirm').open"))
    return said


def screenshot(driver: webdriver.Chrome, folder: Path, name: str) -> None:
    """The whole page (up to 2,400 px high), not only the window."""
    height = js(driver, "return Math.min(2400, Math.max(700, document.documentElement.scrollHeight))")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1360, "height": height, "scale": 1}})
    (folder / f"controlroom-{name}.png").write_bytes(base64.b64decode(shot["data"]))


def driver_enabled(driver: webdriver.Chrome, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).is_enabled()


def view(driver: webdriver.Chrome, name: str) -> None:
    press(driver, f'header nav a[data-view="{name}"]')
    until(driver, f"the {name} view", lambda: js(driver, f"return !document.getElementById('view-{name}').hidden"))


def audit_actions(driver: webdriver.Chrome) -> list[str]:
    return js(driver, "return [...document.querySelectorAll('#audit tr.audit-entry')].map(r => r.dataset.action)")


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("controlroom")
    (workdir / "policy.yaml").write_text(POLICY)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(workdir / "policy.yaml")}, azurite=azurite) as running:
        yield running


def test_a_rollout_followed_from_its_start_to_its_rollback_in_the_control_room(
    stack: Stack, browser: webdriver.Chrome, shots: Path
) -> None:
    key = stack.host.keys.function
    page = f"{stack.host.url}/api/ops/controlroom?code={key}&every=1"
    browser.get(page)
    until(browser, "an empty but healthy page", lambda: js(browser, "return document.body.dataset.health") == "ok")
    assert "No rollout yet" in browser.find_element(By.ID, "rollouts").text

    stack.aml.register_model("dev", MODEL, samples.good_model(seed=1), {})
    stack.aml.register_model("dev", "fraud", samples.good_model(seed=5), {})
    until(browser, "v1 live at 100%", lambda: card(browser).get("state") == "succeeded"
          and bar(browser, "live") == {"credit-risk-v1": 100}, timeout=90)

    with TrafficGenerator(stack.aml, "prod", MODEL, per_second=40):
        stack.aml.register_model("dev", MODEL, samples.good_model(seed=3), {})
        until(browser, "v2's rollout under way", lambda: under_way(card(browser)), timeout=90)
        until(browser, "v2 taking mirror or live traffic", lambda: "credit-risk-v2" in {**bar(browser, "live"),
                                                                                           **bar(browser, "mirror")})
        current = js(browser, f"return document.querySelector('{CARD} ol.plan li.current')?.dataset.step")
        assert current == "mirror 20%", "the mirror phase comes first"

        press(browser, f'{CARD} button[data-action="pause"]')
        until(browser, "the confirmation", lambda: js(browser, "return document.getElementById('confirm').open"), 10)
        screenshot(browser, shots, "confirm")
        said = confirm(browser, "checking the dashboards")
        assert "stops where it is" in said and "credit-risk v2 on prod/credit-risk" in said
        until(browser, "the rollout paused", lambda: card(browser)["state"] == "paused")
        assert "checking the dashboards" in rollout_field(browser, "why")
        assert (stack.state.get("rollout", "prod.credit-risk") or {}).get("state") == "paused"
        paused_at = bar(browser, "live"), bar(browser, "mirror")
        assert js(browser, f"return document.querySelector('{CARD} button[data-action=pause]').disabled")
        assert not js(browser, f"return document.querySelector('{CARD} button[data-action=resume]').disabled")

        press(browser, f'{CARD} button[data-action="resume"]')
        assert "goes on" in confirm(browser, "dashboards look fine")
        until(browser, "the rollout progressing again", lambda: card(browser)["state"] == "progressing")
        until(browser, "the 10% step", lambda: card(browser)["phase"] == "step"
              and bar(browser, "live") == {"credit-risk-v1": 90, "credit-risk-v2": 10}, timeout=60)
        assert js(browser, f"return document.querySelector('{CARD} ol.plan li.current')?.dataset.step") == "10%"
        screenshot(browser, shots, "rollout")
        stack.aml.set_deployment_fault("prod", MODEL, "credit-risk-v2", error_rate=0.5)
        until(browser, "the rollback", lambda: card(browser)["state"] == "rolled_back", timeout=90)

    why = rollout_field(browser, "why")
    record = stack.state.get("rollout", "prod.credit-risk")
    assert record and why == f"Rolled back: {record['rollback_reason']}" and "error" in why
    until(browser, "the old split back", lambda: bar(browser, "live") == {"credit-risk-v1": 100})
    assert bar(browser, "mirror") == {}
    assert paused_at == ({"credit-risk-v1": 100}, {"credit-risk-v2": 20}), "the paused mirror phase was drawn"
    failed = js(browser, f"return [...document.querySelectorAll('{CARD} svg.series circle[data-result=fail]')]"
                         ".map(c => Number(c.dataset.value))")
    gate = float(js(browser, f"return document.querySelector('{CARD} svg.series line.gate').dataset.gate"))
    assert gate == 0.05 and failed and max(failed) > gate, "the failed analysis is drawn above its gate"
    # Read in one script: the page redraws every second, and an element found before a redraw goes stale.
    cells = js(browser, f"return [...document.querySelectorAll('{CARD} tr.analysis td')].map(td => td.innerText)")
    assert "fail" in cells
    for action in ("pause", "resume", "approve", "promote", "abort"):
        assert js(browser, f"return document.querySelector('{CARD} button[data-action={action}]').disabled")
    screenshot(browser, shots, "rollback")

    view(browser, "models")
    until(browser, "v2 rolled back and v1 live", lambda: js(
        browser, "return [...document.querySelectorAll('[data-rule=credit-risk] article.version')]"
                 ".map(a => a.dataset.version + '=' + "
                 "a.dataset.stage).sort().join(' ')") == "credit-risk:1=live credit-risk:2=rolled_back")

    def v2_opened() -> tuple[list[str], str, str]:
        """v2's stages, its current one and its gate table once opened by a click; `until` reads it again
        when the page redraws (every second) between finding an element and using it."""
        v2 = browser.find_element(By.CSS_SELECTOR, 'article[data-version="credit-risk:2"]')
        stages = [li.get_attribute("data-stage") for li in v2.find_elements(By.CSS_SELECTOR, "ol.stages li")]
        current = v2.find_element(By.CSS_SELECTOR, "ol.stages li.current").get_attribute("data-stage")
        v2.find_element(By.CSS_SELECTOR, "details summary").click()
        return stages, current, v2.find_element(By.CSS_SELECTOR, "details table").text

    stages, current, gates = until(browser, "v2's stages and its gate table opened", v2_opened)
    assert stages == ["testing", "passed", "promoted", "rolling_out", "rolled_back"]
    assert current == "rolled_back"
    assert "accuracy" in gates
    until(browser, "fraud v1 waiting for review", lambda: browser.find_elements(
        By.CSS_SELECTOR, 'article[data-review="fraud:1"]'))
    screenshot(browser, shots, "models")
    press(browser, 'article[data-review="fraud:1"] button[data-review-action="approve"]')
    until(browser, "the review's confirmation", lambda: js(browser, "return document.getElementById('confirm').open"))
    assert not driver_enabled(browser, "confirm-ok"), "a review needs a reason before it can be confirmed"
    assert "promoted along its rule's path" in confirm(browser, "gate table checked with the team")
    until(browser, "fraud v1 promoted", lambda: js(
        browser, "return document.querySelector('article[data-version=\"fraud:1\"]')?.dataset.stage") == "promoted")
    assert "fraud v1 is promoted" in browser.find_element(By.ID, "problem").text
    assert (stack.state.get("lifecycle", "fraud:1") or {}).get("review", {}).get("approved") is True

    view(browser, "audit")
    until(browser, "the pause and resume in the audit trail",
          lambda: {"ops.rollout.pause", "ops.rollout.resume", "lifecycle"} <= set(audit_actions(browser)))
    Select(browser.find_element(By.CSS_SELECTOR, "#audit-filter select[name=action]")).select_by_value(
        "ops.rollout.pause")
    until(browser, "only the pause", lambda: audit_actions(browser) == ["ops.rollout.pause"])
    assert "checking the dashboards" in browser.find_element(By.ID, "audit").text
    press(browser, "#audit a.correlation")
    until(browser, "the pause's correlation id filtered", lambda: js(
        browser, "return document.querySelector('#audit-filter [name=correlation_id]').value"))
    Select(browser.find_element(By.CSS_SELECTOR, "#audit-filter select[name=action]")).select_by_value("")
    until(browser, "what that request did", lambda: audit_actions(browser) == ["ops.rollout.pause"])
    press(browser, '#audit-filter button[type="reset"]')
    browser.find_element(By.CSS_SELECTOR, "#audit-filter input[name=model]").send_keys("credit-risk:2")
    until(browser, "v2's entries only", lambda: audit_actions(browser) and all(
        "credit-risk:2" in row.text for row in browser.find_elements(By.CSS_SELECTOR, "#audit tr.audit-entry")))
    screenshot(browser, shots, "audit")

    malformed, foreign = registered_event(), registered_event()
    malformed.pop("data")
    foreign["eventType"] = "Microsoft.Storage.BlobCreated"
    assert post(stack.host, [malformed]).status_code == post(stack.host, [foreign]).status_code == 202
    view(browser, "setaside")
    sections = until(browser, "the set-aside view drawn", lambda: browser.find_elements(
        By.CSS_SELECTOR, "#setaside section.setaside"))  # a view's data is read once it is on screen
    assert [s.get_attribute("data-kind") for s in sections] == ["rejected", "ignored", "deadletter"]
    until(browser, "the rejected and the ignored event", lambda: js(
        browser, "return document.querySelectorAll('#setaside tr.setaside-item').length") == 2)
    rejected = browser.find_element(By.CSS_SELECTOR, '#setaside section[data-kind="rejected"]').text
    assert "'data' must be a JSON object" in rejected and malformed["subject"] in rejected
    screenshot(browser, shots, "setaside")
    press(browser, '#setaside section[data-kind="ignored"] button[data-replay]')
    assert "goes through intake again" in confirm(browser, "")
    until(browser, "the replay's outcome", lambda: "outcome ignored" in browser.find_element(By.ID, "problem").text)

    script_errors = [entry["message"] for entry in browser.get_log("browser")
                     if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]
    assert script_errors == [], "the page's script raised"

    view(browser, "rollouts")
    stack.host.stop()
    until(browser, "a readable error while the app is down", lambda: js(
        browser, "return document.body.dataset.health") == "error")
    problem = browser.find_element(By.ID, "problem").text
    assert "cannot be reached" in problem and "Retrying" in problem
    assert rollout_field(browser, "state") == "rolled back", "the last data stays on the page"
    assert "the last update failed" in browser.find_element(By.ID, "status").text
    screenshot(browser, shots, "error")
    stack.host.start()
    until(browser, "the page recovered", lambda: js(browser, "return document.body.dataset.health") == "ok"
          and not browser.find_element(By.ID, "problem").is_displayed())

    urls = requested_urls(browser)
    assert any("/api/ops/rollouts" in url for url in urls)
    assert [url for url in urls if key in url] == [page], "the key travels only in the page's own URL"
    assert key not in (stack.host.log_file.read_text() if stack.host.log_file else ""), "the key is never logged"


def test_a_refused_action_and_a_wrong_key_read_clearly(stack: Stack, browser: webdriver.Chrome) -> None:
    """Abort on a finished rollout is refused by the API (409): the page says so and why. A page
    opened with the master key but whose API calls are refused shows what to do."""
    browser.get(f"{stack.host.url}/api/ops/controlroom?code={stack.host.keys.function}&every=1")
    until(browser, "the rolled back rollout", lambda: card(browser).get("state") == "rolled_back")
    js(browser, f"document.querySelector('{CARD} button[data-action=undo]').disabled = false")
    press(browser, f'{CARD} button[data-action="undo"]')
    confirm(browser, "")
    until(browser, "the refusal", lambda: js(browser, "return document.getElementById('problem').dataset.kind")
          == "refused")
    assert "409: cannot undo a rollout that is rolled_back" in browser.find_element(By.ID, "problem").text

    browser.get(f"{stack.host.url}/api/ops/controlroom?code=not-the-key")
    assert "controlroom" not in browser.title, "the host refuses the page itself without a valid key"
