"""The control room in a real browser (Debian's chromium, headless, driven by Selenium) over the
local stack, signed in through the local Entra ID stand-in's sign-in form as each person would be:
as erin (MLOps.Admin), a rollout followed from its start to its rollback, pressing pause and resume
with their confirmations, then the views of models, audit and events set aside, and the page's
state while the app cannot be reached; a token the app refuses sends her to sign in again. As bob
(MLOps.Approver) a version waiting for review is approved, and refused under four eyes when he
registered it himself; alice (MLOps.Reader, the registrant) and dave (MLOps.Reader) see no action.

TLS: the stand-in serves HTTPS with a certificate of the local CA. Chromium is started with
`--ignore-certificate-errors-spki-list=<base64 SHA-256 of that certificate's SubjectPublicKeyInfo>`,
computed from the certificate file (`spki_fingerprint`), so that it accepts this one key and still
refuses any other bad certificate; `--ignore-certificate-errors` would accept anything anywhere.

Set CONTROLROOM_SCREENSHOTS to a folder (`docs`) to keep the screenshots of the main views
there (`python -m tools.screenshots` does); they go to the test's temporary folder otherwise."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from devhost.azurite import Azurite
from devhost.entra import LocalEntraStack
from devhost.localaml import register_model_version
from devhost.stack import Stack, TrafficGenerator, local_stack
from devhost.waiting import patience, wait_until
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
  - name: churn
    models: {name: "churn*"}
    source_workspace: dev
    test: {pipeline: model-test, inputs: {test_data: "azureml://datastores/workspaceblobstore/paths/test-data/"}}
    review: {four_eyes: true}
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


def spki_fingerprint(certificate: Path) -> str:
    """Base64 of the SHA-256 of a PEM certificate's SubjectPublicKeyInfo (DER): what Chromium's
    `--ignore-certificate-errors-spki-list` takes."""
    public_key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def start_browser(trusted: Path | None = None, logs: bool = True) -> webdriver.Chrome:
    """Headless chromium that accepts the certificate `trusted` (the sign-in authority's) besides the
    ones it trusts anyway, and no other certificate error."""
    binary, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    if trusted is not None:
        options.add_argument(f"--ignore-certificate-errors-spki-list={spki_fingerprint(trusted)}")
    if logs:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[webdriver.Chrome]:
    """One browser for the module; it accepts the certificate of the module's `authority_certificate`
    fixture (the local Entra ID stand-in's, where people sign in), when the module has one."""
    try:
        trusted = request.getfixturevalue("authority_certificate")
    except pytest.FixtureLookupError:
        trusted = None
    driver = start_browser(trusted)
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
    """Wait for `probe` to return something truthy in the page; fail naming what was awaited. The
    timeout is stretched as `wait_until`'s are (devhost.waiting.patience)."""
    timeout *= patience()

    def check(_: Any) -> Any:
        try:
            return probe()
        except StaleElementReferenceException:  # the page redrew between finding and reading
            return None
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(check)
    except TimeoutException:
        console = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        pytest.fail(f"the control room did not show {what} within {timeout} s; {driver.current_url} shows:\n"
                    + js(driver, "return document.body.innerText")[:3000]
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


def sent_requests(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The requests the browser sent since the last call (URL, method, headers), from its network log."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            sent.append(message["params"]["request"])
    return sent


def signed_in(driver: webdriver.Chrome) -> bool:
    return bool(js(driver, "return document.body && document.body.dataset.auth === 'signed-in'"))


def fill_sign_in_form(driver: webdriver.Chrome, entra: LocalEntraStack, user: str) -> None:
    """On the stand-in's sign-in page: type `user`'s UPN and password, as a person would, sign in, and wait
    to be back on the control room, signed in."""
    person = entra.entra.directory.user(user)
    assert person is not None
    sign_in_as(driver, entra.base_url, person.upn, person.password)


def sign_in_as(driver: webdriver.Chrome, authority_host: str, upn: str, password: str) -> None:
    """What a person does on the sign-in page at `authority_host`: their UPN, their password, Sign in; then the
    control room, signed in."""
    until(driver, "the sign-in form", lambda: driver.current_url.startswith(authority_host)
          and driver.find_elements(By.CSS_SELECTOR, "input[name=password]"))
    username = driver.find_element(By.CSS_SELECTOR, "input[name=username]")
    username.clear()
    username.send_keys(upn)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(driver, f"{upn} signed in", lambda: signed_in(driver))


def sign_in(driver: webdriver.Chrome, page: str, entra: LocalEntraStack, user: str) -> None:
    """Open the control room with no sign-in in the tab: it sends the browser to the stand-in's form;
    `user` signs in there and comes back to the page, signed in."""
    driver.get(page)
    fill_sign_in_form(driver, entra, user)


def sign_out(driver: webdriver.Chrome) -> None:
    """The page's Sign out button: MSAL's logout redirect, through the stand-in, back to the page."""
    press(driver, "#sign-out")
    until(driver, "the page signed out", lambda: js(
        driver, "return document.body && document.body.dataset.auth === 'signed-out'"))


def switch_user(driver: webdriver.Chrome, entra: LocalEntraStack, user: str) -> None:
    """Sign out, then in again as `user` with the page's Sign in button."""
    sign_out(driver)
    assert driver.find_element(By.ID, "signin-title").text == "You signed out"
    press(driver, "#sign-in")
    fill_sign_in_form(driver, entra, user)


def who(driver: webdriver.Chrome) -> dict[str, str]:
    return js(driver, "return {name: document.getElementById('who-name').textContent, "
                      "username: document.getElementById('who-username').textContent, "
                      "roles: document.getElementById('who-roles').textContent, "
                      "may: document.getElementById('who-may').textContent}")


def action_buttons(driver: webdriver.Chrome) -> list[str]:
    """Every button that would act (rollout actions, review decisions, replays) on the view on screen."""
    view_on_screen = "main .view:not([hidden])"
    return js(driver, f"return [...document.querySelectorAll('{view_on_screen} button[data-action], "
                      f"{view_on_screen} button[data-review-action], {view_on_screen} button[data-replay]')]"
                      ".map(b => b.textContent)")


def bearer_tokens(requests_sent: list[dict[str, Any]]) -> set[str]:
    """The bearer tokens of these requests (`sent_requests`)."""
    tokens = set()
    for request in requests_sent:
        headers = {k.lower(): v for k, v in request.get("headers", {}).items()}
        if headers.get("authorization", "").startswith("Bearer "):
            tokens.add(headers["authorization"].removeprefix("Bearer "))
    return tokens


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("controlroom")
    (workdir / "policy.yaml").write_text(POLICY)
    with local_stack(workdir, {"MLOPS_POLICY_PATH": str(workdir / "policy.yaml")}, azurite=azurite) as running:
        yield running  # the stand-in has the page as a redirect URI of the app's registration


@pytest.fixture(scope="module")
def authority_certificate(stack: Stack) -> Path:
    """The stand-in's server certificate (the local CA's, which the local Azure ML service shares)."""
    return stack.aml.certificates.cert_file


def test_a_rollout_followed_from_its_start_to_its_rollback_in_the_control_room(
    stack: Stack, browser: webdriver.Chrome, shots: Path
) -> None:
    page = f"{stack.host.url}/api/ops/controlroom?every=1"
    sign_in(browser, page, stack.aml.entra, "erin")
    assert "code=" not in browser.current_url and "#" not in browser.current_url, "MSAL cleared the code"
    assert browser.current_url == page, "back on the page as it was opened"
    assert who(browser) == {"name": "Erin Evans", "username": "erin@contoso.test", "roles": "MLOps.Admin",
                            "may": "You may read everything here, act on rollouts (promoting fully too) and replay "
                                   "events set aside."}
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
        assert js(browser, f"return [...document.querySelectorAll('{CARD} button[data-action]')]"
                           ".map(b => b.dataset.action)") == [
            "pause", "resume", "approve", "promote", "abort", "undo", "promote-full"], "an admin promotes fully too"

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

    def v2_opened() -> tuple[list[str], str, str] | None:
        """v2's stages, its current one and its gate table once opened by a click; `until` reads it again
        when the page redraws (every second) between finding an element and using it. A click lands only
        on a closed table (a second click would close it) and the table counts once it shows text."""
        v2 = browser.find_element(By.CSS_SELECTOR, 'article[data-version="credit-risk:2"]')
        stages = [str(li.get_attribute("data-stage")) for li in v2.find_elements(By.CSS_SELECTOR, "ol.stages li")]
        current = str(v2.find_element(By.CSS_SELECTOR, "ol.stages li.current").get_attribute("data-stage"))
        if v2.find_element(By.CSS_SELECTOR, "details").get_attribute("open") is None:
            v2.find_element(By.CSS_SELECTOR, "details summary").click()
        gates = v2.find_element(By.CSS_SELECTOR, "details table").text
        return (stages, current, gates) if gates else None

    stages, current, gates = until(browser, "v2's stages and its gate table opened", v2_opened)
    assert stages == ["testing", "passed", "promoted", "rolling_out", "rolled_back"]
    assert current == "rolled_back"
    assert "accuracy" in gates
    until(browser, "fraud v1 waiting for review", lambda: browser.find_elements(
        By.CSS_SELECTOR, 'article[data-review="fraud:1"]'))
    screenshot(browser, shots, "models")
    # One script reads the card: the page redraws every second, which would stale an element found before.
    review = js(browser, """const card = document.querySelector('article[data-review="fraud:1"]');
        return {buttons: card.querySelectorAll('button').length,
                may: card.querySelector('[data-field=may-not-review]')?.textContent};""")
    assert review["buttons"] == 0, "an admin is no approver"
    assert review["may"] == "Approving or rejecting it needs the app role MLOps.Approver."

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
    assert [s.get_attribute("data-kind") for s in sections] == ["rejected", "ignored", "deadletter", "invalid"]
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

    sent = sent_requests(browser)
    urls = [request["url"] + request.get("urlFragment", "") for request in sent]
    assert any("/api/ops/rollouts" in url for url in urls)
    to_app = [request["url"] for request in sent if request["url"].startswith(stack.host.url)]
    assert not [url for url in to_app if "code=" in url], "the authorization code never reaches the app"
    assert any(request.get("urlFragment", "").startswith("#code=") for request in sent), (
        "the code came back in the redirect's fragment, which the browser does not send")
    tokens = bearer_tokens(sent)
    assert tokens, "the page called the API with erin's token"
    log = stack.host.log_file.read_text() if stack.host.log_file else ""
    for token in tokens:
        assert token.count(".") == 2 and not any(token in url for url in urls), "a token never goes in a URL"
        assert token not in log, "the token is never logged"


def test_a_refused_action_reads_clearly_and_a_refused_token_signs_in_again(
    stack: Stack, browser: webdriver.Chrome
) -> None:
    """Undo on a rolled back rollout is refused by the API (409): the page says so and why. When the
    API refuses the page's token (401: here a token whose signature no longer matches), the page
    sends the person to sign in again and carries on."""
    browser.get(f"{stack.host.url}/api/ops/controlroom?every=1")
    until(browser, "the rolled back rollout", lambda: card(browser).get("state") == "rolled_back")
    js(browser, f"document.querySelector('{CARD} button[data-action=undo]').disabled = false")
    press(browser, f'{CARD} button[data-action="undo"]')
    confirm(browser, "")
    until(browser, "the refusal", lambda: js(browser, "return document.getElementById('problem').dataset.kind")
          == "refused")
    assert "409: cannot undo a rollout that is rolled_back" in browser.find_element(By.ID, "problem").text

    spoilt = js(browser, """
        let spoilt = 0;
        for (const key of Object.keys(sessionStorage)) {
          let entry = null;
          try { entry = JSON.parse(sessionStorage.getItem(key)); } catch { continue; }
          if (entry && entry.credentialType === "AccessToken") {
            entry.secret = entry.secret.slice(0, -8) + (entry.secret.endsWith("AAAAAAAA") ? "BBBBBBBB" : "AAAAAAAA");
            sessionStorage.setItem(key, JSON.stringify(entry));
            spoilt += 1;
          }
        }
        return spoilt;""")
    assert spoilt == 1, "MSAL keeps the access token in sessionStorage"
    browser.refresh()  # MSAL reads its cache from sessionStorage when the page loads
    fill_sign_in_form(browser, stack.aml.entra, "erin")  # the page's next call got a 401
    until(browser, "erin signed in again, the data back", lambda: signed_in(browser)
          and js(browser, "return document.body.dataset.health") == "ok"
          and card(browser).get("state") == "rolled_back")


def register_as(stack: Stack, user: str, name: str, seed: int) -> str:
    """`user` (of the stand-in's directory) registers the next version of `name` in dev, signed in to
    Azure ML as themselves (Azure ML records them as its creator); its version, once it waits for review."""
    version = register_model_version(stack.aml.client_as("dev", f"{user}@contoso.test"), "dev", name,
                                     samples.good_model(seed=seed)).version
    key = f"{name}:{version}"
    until_state(stack, f"{key} waiting for review",
                lambda: (stack.state.get("lifecycle", key) or {}).get("stage") == "awaiting_review")
    return version


def until_state(stack: Stack, what: str, probe: Callable[[], Any], timeout: float = 90) -> None:

    try:
        wait_until(probe, timeout=timeout)
    except Exception:
        pytest.fail(f"the app did not reach {what} within {timeout} s")


def redrawn(driver: webdriver.Chrome) -> None:
    """Wait for a whole refresh of the view on screen that began after now, and a healthy page."""
    begin = int(js(driver, "return Number(document.body.dataset.refreshes)"))
    until(driver, "a refresh of the view", lambda: int(js(
        driver, "return Number(document.body.dataset.refreshes)")) >= begin + 2
        and js(driver, "return document.body.dataset.health") == "ok")


def review_card(driver: webdriver.Chrome, key: str) -> Any:
    return driver.find_elements(By.CSS_SELECTOR, f'article[data-review="{key}"]')


def test_people_see_and_do_what_their_roles_allow_and_bob_approves_a_review(
    stack: Stack, browser: webdriver.Chrome
) -> None:
    """alice (MLOps.Reader) registered churn v1: she sees it wait, with no button to decide (the API
    would refuse her: 403 naming MLOps.Approver). bob (MLOps.Approver) approves it in the page: the
    lifecycle records him by his UPN and object id. He registered churn v2 himself: his approval is
    refused under four eyes, and the page says so. dave (MLOps.Reader) sees no action anywhere."""
    page = f"{stack.host.url}/api/ops/controlroom?every=1#models"
    entra = stack.aml.entra
    first = register_as(stack, "alice", "churn", seed=11)
    if signed_in(browser):
        browser.get(page)
        until(browser, "the page signed in", lambda: signed_in(browser))
        switch_user(browser, entra, "alice")
    else:
        sign_in(browser, page, entra, "alice")
    assert who(browser) == {"name": "Alice Adams", "username": "alice@contoso.test", "roles": "MLOps.Reader",
                            "may": "You may read everything here."}
    view(browser, "models")
    until(browser, f"churn v{first} waiting for review", lambda: review_card(browser, f"churn:{first}"))
    card_text = review_card(browser, f"churn:{first}")[0].text
    assert "Registered by alice@contoso.test." in card_text
    assert "Approving or rejecting it needs the app role MLOps.Approver." in card_text
    assert action_buttons(browser) == []
    refused = stack.admin("POST", f"ops/lifecycles/churn/{first}/review", as_user="alice",
                          json={"decision": "approve", "reason": "mine, and fine"})
    assert refused.status_code == 403 and "MLOps.Approver" in refused.json()["error"]

    switch_user(browser, entra, "bob")
    assert who(browser)["username"] == "bob@contoso.test" and "Bob Baker" in browser.find_element(By.ID, "who").text
    assert who(browser)["may"] == "You may read everything here and approve or reject versions waiting for review."
    view(browser, "models")
    until(browser, f"churn v{first} to decide on", lambda: browser.find_elements(
        By.CSS_SELECTOR, f'article[data-review="churn:{first}"] button[data-review-action="approve"]'))
    press(browser, f'article[data-review="churn:{first}"] button[data-review-action="approve"]')
    until(browser, "the review's confirmation", lambda: js(browser, "return document.getElementById('confirm').open"))
    assert not driver_enabled(browser, "confirm-ok"), "a review needs a reason before it can be confirmed"
    assert "promoted along its rule's path" in confirm(browser, "gate table checked with the team")
    until(browser, f"churn v{first} promoted", lambda: js(
        browser, f"return document.querySelector('article[data-version=\"churn:{first}\"]')?.dataset.stage")
        == "promoted")
    assert f"churn v{first} is promoted" in browser.find_element(By.ID, "problem").text
    decision = (stack.state.get("lifecycle", f"churn:{first}") or {}).get("review") or {}
    bob = entra.entra.directory.user("bob")
    assert bob is not None
    assert (decision.get("approved"), decision.get("by"), decision.get("by_oid"), decision.get("via")) == (
        True, "bob@contoso.test", bob.oid, "api")

    second = register_as(stack, "bob", "churn", seed=12)
    until(browser, f"churn v{second} to decide on", lambda: browser.find_elements(
        By.CSS_SELECTOR, f'article[data-review="churn:{second}"] button[data-review-action="approve"]'))
    press(browser, f'article[data-review="churn:{second}"] button[data-review-action="approve"]')
    confirm(browser, "looks good to me")
    until(browser, "the refusal", lambda: js(browser, "return document.getElementById('problem').dataset.kind")
          == "refused")
    assert browser.find_element(By.ID, "problem").text == (
        f"Approve churn v{second} was refused: 403: four eyes: Bob Baker (bob@contoso.test) registered "
        f"churn:{second} and may not approve it")
    assert (stack.state.get("lifecycle", f"churn:{second}") or {}).get("stage") == "awaiting_review"
    view(browser, "rollouts")
    until(browser, "the rollouts drawn", lambda: js(browser, "return document.body.dataset.health") == "ok")
    assert action_buttons(browser) == [], "an approver does not operate rollouts"

    switch_user(browser, entra, "dave")
    assert who(browser)["may"] == "You may read everything here."
    for name in ("rollouts", "models", "setaside"):
        view(browser, name)
        redrawn(browser)
        assert action_buttons(browser) == [], f"a reader sees no action on {name}"
    view(browser, "models")
    until(browser, f"churn v{second} waiting, without a button", lambda: review_card(browser, f"churn:{second}"))
    assert action_buttons(browser) == []

    script_errors = [entry["message"] for entry in browser.get_log("browser")
                     if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]
    assert script_errors == [], "the page's script raised or the CSP refused something"
