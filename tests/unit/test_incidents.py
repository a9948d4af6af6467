"""One failure, one message: a lifecycle's or an endpoint's failure opens one incident, told once on each channel
whatever its errors say; later errors of the open incident are audited (each distinct one once), nobody told; the
subject's next success closes it with one "recovered" notice.

Once "The reconcile of credit-risk:9 failed" reached Slack and Teams 4 times, once per distinct error text.
On the fakes of `tests.unit.test_isolation_fakes` (the fake notifier sends each notification id once, as the
real one's delivery records make it)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.notify import NotifyError
from shared.adapters.notify.delivery import DeliveryError
from shared.bootstrap import Services
from shared.domain.notification import Notification
from shared.domain.work import FailureReport
from shared.reactor import outcomes, reactions
from shared.reactor import rollout as engine
from tests.unit.test_isolation import BROKEN, TWO_RULES, rollout_record
from tests.unit.test_isolation_fakes import clock_of, fake_services, fake_state, lifecycle_record


@pytest.fixture
def services() -> Services:
    return fake_services(TWO_RULES)


def told(services: Services) -> list[Notification]:
    return list(services.notifier.sent.values())  # type: ignore[attr-defined]


def audited(services: Services, subject: str) -> list[tuple[str, str]]:
    return [(entry.outcome, entry.reason) for entry in fake_state(services).entries if entry.subject == subject]


def fail(services: Services, subject: str, text: str, scope: str = "reconcile") -> None:
    outcomes.report_failure(services, scope, subject, RuntimeError(text), "resync")


def test_a_lifecycle_failing_with_four_error_texts_is_told_once_and_each_text_audited_once(
        services: Services) -> None:
    """The issue's credit-risk:9: four distinct errors, each a message to Slack and Teams."""
    for text in ("timeout talking to the registry", "HTTP 503", "timeout talking to the registry", "HTTP 502",
                 "the job's record is corrupt", "HTTP 503"):
        fail(services, "credit-risk:9", text)
        clock_of(services).advance(minutes=5)

    [notice] = told(services)
    assert notice.kind == outcomes.FAILED and notice.title == "The reconcile of credit-risk:9 failed"
    assert notice.summary == "RuntimeError: timeout talking to the registry"
    assert [outcome for outcome, _ in audited(services, "credit-risk:9")] == ["error"] * 4
    incident = services.state.failure_reports.get(outcomes.incident_key("reconcile", "credit-risk:9"))
    assert incident is not None and incident.errors == 6 and incident.closed is None and incident.told
    assert incident.reason == "RuntimeError: HTTP 503"


def test_each_subject_and_scope_is_its_own_incident(services: Services) -> None:
    fail(services, "credit-risk:2", "boom")
    fail(services, "credit-risk:6", "boom")
    fail(services, "prod.credit-risk", "boom", scope="rollout")
    fail(services, "credit-risk:2", "bang")
    assert sorted(n.subject for n in told(services)) == ["credit-risk:2", "credit-risk:6", "prod.credit-risk"]


def test_the_next_success_closes_the_incident_with_one_recovered_notice_and_a_new_failure_opens_another(
        services: Services) -> None:
    fail(services, "credit-risk:9", "HTTP 503")
    fail(services, "credit-risk:9", "HTTP 502")
    clock_of(services).advance(minutes=10)

    outcomes.recovered(services, "reconcile", "credit-risk:9", "resync")
    outcomes.recovered(services, "reconcile", "credit-risk:9", "resync")  # success again: nothing more to say

    kinds = [(n.kind, n.severity) for n in told(services)]
    assert kinds == [(outcomes.FAILED, "error"), (outcomes.RECOVERED, "info")]
    recovery = told(services)[1]
    assert recovery.title == "The reconcile of credit-risk:9 recovered"
    assert "after 2 failures since 2026-12-01 09:00 UTC" in (recovery.summary or "")
    assert [outcome for outcome, _ in audited(services, "credit-risk:9")] == ["error", "error", "recovered"]

    fail(services, "credit-risk:9", "HTTP 503")  # the same text as before: a new incident all the same
    assert [n.kind for n in told(services)] == [outcomes.FAILED, outcomes.RECOVERED, outcomes.FAILED]
    assert len({n.id for n in told(services)}) == 3
    incident = services.state.failure_reports.get(outcomes.incident_key("reconcile", "credit-risk:9"))
    assert incident is not None and incident.incident == 2 and incident.closed is None


def test_a_success_without_an_incident_tells_nobody_and_writes_nothing(services: Services) -> None:
    outcomes.recovered(services, "rollout", "prod.credit-risk", "timer")
    assert told(services) == [] and fake_state(services).entries == []
    assert fake_state(services).items("failures") == []


def test_an_endpoint_whose_ticks_fail_with_changing_errors_is_told_once_then_recovered_once(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    rollout_record(services, "aaa-broken", "churn", "1", "churn")
    working = services.platform.get_endpoint
    calls = {"n": 0}

    def broken(*args: Any) -> Any:
        calls["n"] += 1
        raise RuntimeError(f"unexpected answer #{calls['n']}")

    monkeypatch.setattr(services.platform, "get_endpoint", broken)
    for _ in range(3):
        assert engine.tick_all(services)[BROKEN].startswith("error: RuntimeError: unexpected answer")
    monkeypatch.setattr(services.platform, "get_endpoint", working)
    for _ in range(3):
        assert not engine.tick_all(services)[BROKEN].startswith("error")

    incident = [(n.kind, n.subject) for n in told(services) if n.kind.startswith("work.")]
    assert incident == [(outcomes.FAILED, BROKEN), (outcomes.RECOVERED, BROKEN)]
    assert [outcome for outcome, _ in audited(services, BROKEN) if outcome != "done"][-4:] == [
        "error", "error", "error", "recovered"]


def test_a_notice_that_could_not_be_sent_for_now_is_sent_at_the_next_failure_and_only_once(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    notifier = services.notifier
    sent = notifier.notify
    down = {"on": True}

    def flaky(notification: Notification, channels: list[str] | None = None) -> None:
        if down["on"]:
            raise NotifyError(notification.id, [DeliveryError("slack", "HTTP 503 from https://hooks.slack.com")])
        sent(notification, channels)

    monkeypatch.setattr(notifier, "notify", flaky)
    fail(services, "credit-risk:9", "HTTP 503")
    assert told(services) == []
    down["on"] = False
    fail(services, "credit-risk:9", "HTTP 503")
    fail(services, "credit-risk:9", "HTTP 502")
    assert [n.kind for n in told(services)] == [outcomes.FAILED]


def test_an_incident_whose_opening_was_never_told_closes_without_a_recovered_notice(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(notification: Notification, channels: list[str] | None = None) -> None:
        raise NotifyError(notification.id, [DeliveryError("teams", "HTTP 503 from https://example.com")])

    monkeypatch.setattr(services.notifier, "notify", down)
    fail(services, "credit-risk:9", "HTTP 503")
    monkeypatch.undo()
    outcomes.recovered(services, "reconcile", "credit-risk:9", "resync")
    assert told(services) == []
    incident = services.state.failure_reports.get(outcomes.incident_key("reconcile", "credit-risk:9"))
    assert incident is not None and incident.closed is not None


def test_a_failure_report_kept_before_incidents_still_loads_and_a_failure_opens_an_incident(
        services: Services) -> None:
    old = {"scope": "reconcile", "subject": "credit-risk:9", "reason": "RuntimeError: x",
           "time": "2026-11-30T10:00:00Z"}
    fake_state(services).put("failures", "0123456789abcdef0123456789abcdef", old)
    assert services.state.failure_reports.get("0123456789abcdef0123456789abcdef") == FailureReport.model_validate(old)
    fake_state(services).put("failures", outcomes.incident_key("reconcile", "credit-risk:9"), old)
    fail(services, "credit-risk:9", "RuntimeError: x")
    assert [n.kind for n in told(services)] == [outcomes.FAILED]


def test_the_resync_reports_a_lifecycle_that_keeps_failing_once(services: Services) -> None:
    services.state.lifecycles.put("churn:1", lifecycle_record("churn", "1", "testing"))
    for number in range(4):
        services.platform.job_errors["test-churn-v1"] = RuntimeError(f"error {number}")  # type: ignore
        reactions.resync(services)
        clock_of(services).advance(minutes=1)

    assert [n.kind for n in told(services)] == [outcomes.FAILED]
    assert [outcome for outcome, _ in audited(services, "churn:1")].count("error") == 4

    del services.platform.job_errors["test-churn-v1"]  # type: ignore[attr-defined]
    reactions.resync(services)
    reactions.resync(services)
    incident = [n.kind for n in told(services) if n.kind in (outcomes.FAILED, outcomes.RECOVERED)]
    assert incident == [outcomes.FAILED, outcomes.RECOVERED], "the next reconcile that runs through closes it, once"


def test_incident_notices_go_to_every_configured_channel(services: Services,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Each channel hears the same incident notices (the rule's routing is for its own decisions)."""
    routed: list[tuple[str, list[str] | None]] = []
    sent = services.notifier.notify

    def record(notification: Notification, channels: list[str] | None = None) -> None:
        routed.append((notification.kind, channels))
        sent(notification, channels)

    monkeypatch.setattr(services.notifier, "notify", record)
    fail(services, "churn:1", "boom")
    fail(services, "churn:1", "bang")
    outcomes.recovered(services, "reconcile", "churn:1", "resync")
    assert routed == [(outcomes.FAILED, None), (outcomes.RECOVERED, None)]


def test_an_incident_quiet_for_a_day_is_over_and_the_next_failure_is_told_again(services: Services) -> None:
    """A subject whose successes are not reported still has its next failure told, a day on."""
    fail(services, "credit-risk:9", "HTTP 503")
    clock_of(services).advance(hours=23)
    fail(services, "credit-risk:9", "HTTP 503")
    clock_of(services).advance(hours=24, seconds=1)
    fail(services, "credit-risk:9", "HTTP 503")
    assert [n.id.rsplit(":", 1)[1] for n in told(services)] == ["1", "2"]
