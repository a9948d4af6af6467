"""What one refresh of the control room costs, in a real browser over the local host: it reads
only the view on screen, and on the rollouts view only the list plus the endpoints whose rollout
is active (a quiet, ended rollout is not read again on every refresh), yet a change to an ended
rollout shows on the next refresh. The state is written straight into the host's container.

The host verifies people's tokens against the bare hosts' local Entra ID stand-in (tests/e2e/conftest.py); dave
(MLOps.Reader) signs in on its form, and the page's tokens then come from MSAL's cache: a refresh
asks the authority nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver

from devhost.entra import LocalEntraStack
from devhost.process import HostProcess
from localaml.tls import Certificates
from shared.adapters.storage.clients import blob_service, table_service
from shared.adapters.storage.index import TableIndex, table_name
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Stores
from shared.domain.policy import RolloutPlan
from shared.domain.records import (
    HistoryAction,
    Lifecycle,
    Phase,
    Rollout,
    RolloutEntry,
    RolloutState,
    Split,
    Stage,
    StageEntry,
)
from shared.settings import Settings
from tests.e2e.test_controlroom_browser import browser, js, sign_in, until  # noqa: F401  (browser: the fixture)

pytestmark = pytest.mark.e2e
LONG_AGO = datetime.now(UTC) - timedelta(days=3)
QUIET = ("churn-1", "churn-2", "churn-3", "churn-4", "churn-5")


def rollout(endpoint: str, state: RolloutState, finished: datetime | None) -> Rollout:
    return Rollout(
        id=f"{endpoint}/churn-v2", key=f"prod.{endpoint}", workspace="prod", endpoint=endpoint, deployment="churn-v2",
        rule="churn", model="churn", version="2", plan=RolloutPlan(workspace="prod", endpoint=endpoint),
        baseline=Split(traffic={"churn-v1": 100}), state=state, phase=Phase.STEP, step=1,
        target=Split(traffic={"churn-v2": 100}), started=LONG_AGO, finished=finished,
        history=[RolloutEntry(time=finished or LONG_AGO, actor="system", reason="as planned",
                              action=HistoryAction.SUCCEEDED if finished else HistoryAction.STEP)],
    )


@pytest.fixture(scope="module")
def authority_certificate(entra_certificates: Certificates) -> Path:
    """The certificate the browser accepts for the stand-in (see test_controlroom_browser.browser)."""
    return entra_certificates.cert_file


@pytest.fixture
def state(host: HostProcess) -> Stores:
    """The host's state, written as the app writes it (each record indexed: `docs/state.md`)."""
    settings = Settings.from_environ(host.settings)
    store = Stores(BlobStateStore(blob_service(settings), settings.state_container),
                   TableIndex(table_service(settings), table_name(settings.state_container)))
    for endpoint in QUIET:
        store.rollouts.put(f"prod.{endpoint}", rollout(endpoint, RolloutState.SUCCEEDED, LONG_AGO))
    store.rollouts.put("prod.churn-live", rollout("churn-live", RolloutState.PROGRESSING, None))
    record = Lifecycle(model="churn", version="2", workspace="dev", rule="churn", stage=Stage.LIVE, test_job="t",
                       history=[StageEntry(stage=Stage.LIVE, time=LONG_AGO, cause="event", reason="serving")])
    store.lifecycles.put(record.key, record)
    return store


def api_paths(driver: webdriver.Chrome, since: float, until_mark: float) -> list[str]:
    """The admin API paths the page requested between two of its clock's times."""
    return js(driver, "return performance.getEntriesByType('resource').filter(e => e.startTime >= arguments[0] "
                      "&& e.startTime <= arguments[1] && e.name.includes('/api/ops/')).map(e => "
                      "new URL(e.name).pathname.replace('/api/', ''))", since, until_mark)


def refreshes_of(driver: webdriver.Chrome, count: int) -> list[str]:
    """The API paths of the next `count` whole refreshes."""
    begin = int(js(driver, "return Number(document.body.dataset.refreshes)"))
    until(driver, "a refresh to start after now", lambda: int(js(
        driver, "return Number(document.body.dataset.refreshes)")) > begin)
    start = js(driver, "return performance.now()")
    first = int(js(driver, "return Number(document.body.dataset.refreshes)"))
    until(driver, f"{count} refreshes", lambda: int(js(
        driver, "return Number(document.body.dataset.refreshes)")) >= first + count)
    return api_paths(driver, start, js(driver, "return performance.now()"))


def card_why(driver: webdriver.Chrome, endpoint: str) -> Any:
    return js(driver, f"return document.querySelector('article[data-rollout=\"prod.{endpoint}\"] "
                      "[data-field=why]')?.textContent")


def test_a_refresh_reads_the_view_on_screen_and_only_the_rollouts_that_may_have_changed(
    host: HostProcess, state: Stores, entra: LocalEntraStack, browser: webdriver.Chrome  # noqa: F811
) -> None:
    entra.entra.add_spa_redirect_uri(f"{host.url}/api/ops/controlroom")
    sign_in(browser, f"{host.url}/api/ops/controlroom?every=0.5", entra, "dave")
    until(browser, "every rollout drawn", lambda: js(
        browser, "return document.querySelectorAll('article.rollout').length") == len(QUIET) + 1)
    js(browser, "performance.setResourceTimingBufferSize(10000)")

    js(browser, "window.__quiet = document.querySelector('article[data-rollout=\"prod.churn-3\"]')")
    since = js(browser, "return performance.now()")
    paths = refreshes_of(browser, 4)
    assert js(browser, "return window.__quiet === document.querySelector('article[data-rollout=\"prod.churn-3\"]')"), (
        "a card whose rollout did not change is kept as drawn, not drawn again at each refresh")
    assert paths, "the page went on refreshing"
    assert js(browser, "return performance.getEntriesByType('resource').filter(e => e.startTime >= arguments[0] "
                       "&& e.name.startsWith(arguments[1])).length", since, entra.base_url) == 0, (
        "the page's token comes from MSAL's cache: a refresh asks the authority nothing")
    assert set(paths) == {"ops/rollouts", "ops/rollouts/prod/churn-live"}, paths
    assert paths.count("ops/rollouts") == paths.count("ops/rollouts/prod/churn-live") >= 4, "each refresh reads both"
    lists, reads = (js(browser, "return performance.getEntriesByType('resource').filter(e => e.startTime >= "
                                "arguments[0] && new URL(e.name).pathname === arguments[1]).map(e => [e.startTime, "
                                "e.responseEnd])", since, f"/api/{path}")
                    for path in ("ops/rollouts", "ops/rollouts/prod/churn-live"))
    assert all(any(read <= answered and begun <= done for begun, answered in lists) for read, done in reads), (
        "the active endpoint is read together with the list, not after its answer", lists, reads)

    # Someone undoes a quiet rollout: its list entry changes, so the next refreshes read it again.
    undone = rollout("churn-3", RolloutState.ROLLED_BACK, datetime.now(UTC)).model_copy(
        update={"rollback_reason": "undone by ops: checking a complaint"})
    state.rollouts.put("prod.churn-3", undone)
    until(browser, "the undo drawn", lambda: card_why(browser, "churn-3") == (
        "Rolled back: undone by ops: checking a complaint"), timeout=10)
    assert not js(browser, "return document.contains(window.__quiet)"), "the changed card was drawn anew"

    js(browser, "window.location.hash = '#models'")
    until(browser, "the models view drawn", lambda: js(
        browser, "return document.querySelector('[data-version=\"churn:2\"]')?.dataset.stage") == "live", timeout=10)
    assert set(refreshes_of(browser, 3)) == {"ops/lifecycles"}
    js(browser, "window.location.hash = '#setaside'")
    until(browser, "the set-aside view drawn", lambda: js(
        browser, "return document.querySelectorAll('#setaside section.setaside').length") == 4, timeout=10)
    assert sorted(set(refreshes_of(browser, 2))) == ["ops/events/setaside"]
