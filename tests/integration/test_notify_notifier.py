"""The notifier on Azurite and the local receiver: one delivery per decision and channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.receiver import Receiver
from shared.adapters.notify import Notifier, NotifyError, RetryPolicy
from shared.adapters.notify.log import LogChannel
from shared.adapters.notify.teams import TeamsChannel
from shared.adapters.storage.state import BlobStateStore
from shared.domain.notification import Notification
from shared.settings import Settings, SettingsError
from tests.integration.conftest import SECRET

FAST = RetryPolicy(attempts=3, total_seconds=10, first_delay=0.05, max_delay=0.2, read_timeout=5)


@pytest.fixture
def notify_settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(
        update={
            "notify_teams_url": receiver.url + "/teams?sig=s",
            "notify_slack_url": receiver.url + "/slack",
            "notify_webhook_url": receiver.url + "/webhook",
            "notify_webhook_secret": SECRET,
        }
    )


@pytest.fixture
def notifier(notify_settings: Settings, state: BlobStateStore) -> Notifier:
    return Notifier.from_settings(notify_settings, state, FAST)


def rejected(version: int = 3) -> Notification:
    return Notification(
        id=f"model.rejected:credit-risk:{version}",
        kind="model.rejected",
        title=f"credit-risk {version} rejected",
        severity="error",
        subject=f"credit-risk:{version}",
    )


def counts(receiver: Receiver) -> dict[str, int]:
    return {path: len(receiver.accepted(path)) for path in ("/teams", "/slack", "/webhook")}


def test_every_configured_channel_hears_once_and_the_log_too(notifier: Notifier, receiver: Receiver) -> None:
    outcomes = notifier.notify(rejected())

    assert outcomes == {"teams": "sent", "slack": "sent", "webhook": "sent", "log": "sent"}
    assert counts(receiver) == {"/teams": 1, "/slack": 1, "/webhook": 1}
    assert receiver.accepted("/webhook")[0].signature_valid is True


def test_a_redelivered_decision_sends_nothing_twice(
    notify_settings: Settings, state: BlobStateStore, receiver: Receiver
) -> None:
    Notifier.from_settings(notify_settings, state, FAST).notify(rejected())
    # A second worker (a new process after a redelivery) with the same state.
    outcomes = Notifier.from_settings(notify_settings, state, FAST).notify(rejected())

    assert set(outcomes.values()) == {"already sent"}
    assert len(receiver.received) == 3
    record = state.get("notifications", "model.rejected:credit-risk:3.teams") or {}
    assert {key: value for key, value in record.items() if key != "time"} == {
        "notification": "model.rejected:credit-risk:3",
        "kind": "model.rejected",
        "channel": "teams",
        "status": "sent",
        "attempts": 1,
        "error": None,
    }


def test_a_failed_channel_is_named_and_the_others_are_still_tried(notifier: Notifier, receiver: Receiver) -> None:
    receiver.script(400, path="/teams")

    with pytest.raises(NotifyError) as error:
        notifier.notify(rejected())

    assert str(error.value).startswith(
        "notification model.rejected:credit-risk:3 was not delivered: "
        f"teams: permanent failure: HTTP 400 from {receiver.url}"
    )
    assert [failure.channel for failure in error.value.failures] == ["teams"]
    assert error.value.permanent is True
    assert counts(receiver) == {"/teams": 0, "/slack": 1, "/webhook": 1}


def test_notifying_again_resumes_only_the_failed_channel(
    notifier: Notifier, receiver: Receiver, state: BlobStateStore
) -> None:
    receiver.script(*[503] * FAST.attempts, path="/slack")
    with pytest.raises(NotifyError, match="slack: failed: HTTP 503") as error:
        notifier.notify(rejected())
    assert error.value.permanent is False
    assert state.get("notifications", "model.rejected:credit-risk:3.slack")["status"] == "failed"  # type: ignore[index]

    outcomes = notifier.notify(rejected())

    assert outcomes == {"teams": "already sent", "slack": "sent", "webhook": "already sent", "log": "already sent"}
    assert counts(receiver) == {"/teams": 1, "/slack": 1, "/webhook": 1}
    assert state.get("notifications", "model.rejected:credit-risk:3.slack")["attempts"] == 2  # type: ignore[index]


def test_each_decision_is_its_own_notification(notifier: Notifier, receiver: Receiver) -> None:
    notifier.notify(rejected(3))
    notifier.notify(rejected(4))

    assert counts(receiver) == {"/teams": 2, "/slack": 2, "/webhook": 2}


def test_a_policy_can_route_a_kind_to_some_channels(notifier: Notifier, receiver: Receiver) -> None:
    outcomes = notifier.notify(rejected(), channels=["slack"])

    assert outcomes == {"slack": "sent", "log": "sent"}
    assert counts(receiver) == {"/teams": 0, "/slack": 1, "/webhook": 0}


def test_a_routed_channel_that_is_not_configured_is_skipped(settings: Settings, state: BlobStateStore) -> None:
    outcomes = Notifier.from_settings(settings, state).notify(rejected(), channels=["teams"])

    assert outcomes == {"teams": "not configured", "log": "sent"}


def test_an_unknown_channel_name_is_refused(notifier: Notifier) -> None:
    with pytest.raises(ValueError, match="unknown notification channel 'email': expected one of teams, slack"):
        notifier.notify(rejected(), channels=["email"])


def claimed(state: BlobStateStore, since: datetime) -> None:
    """The Teams delivery of `rejected()`, claimed by another worker at `since`, as the notifier stores it."""
    state.write("notifications", "model.rejected:credit-risk:3.teams", {
        "notification": "model.rejected:credit-risk:3", "kind": "model.rejected", "channel": "teams",
        "status": "sending", "attempts": 1, "time": since.isoformat(), "error": None,
    }, None)


def test_a_send_in_flight_elsewhere_is_not_repeated(state: BlobStateStore, receiver: Receiver) -> None:
    claimed(state, datetime.now(UTC))
    notifier = Notifier([TeamsChannel(receiver.url + "/teams", FAST), LogChannel()], state)

    with pytest.raises(NotifyError, match="teams: failed: another worker has been sending it since"):
        notifier.notify(rejected())
    assert receiver.received == []


def test_a_stale_claim_is_taken_over(state: BlobStateStore, receiver: Receiver) -> None:
    claimed(state, datetime.now(UTC) - timedelta(minutes=10))
    notifier = Notifier([TeamsChannel(receiver.url + "/teams", FAST), LogChannel()], state, claim_seconds=300)

    assert notifier.notify(rejected())["teams"] == "sent"
    assert counts(receiver)["/teams"] == 1


def test_settings_choose_the_channels(settings: Settings, state: BlobStateStore) -> None:
    configured = settings.model_copy(
        update={
            "notify_slack_url": "https://hooks.slack.com/services/T0/B0/X",
            "notify_eventgrid_endpoint": "https://topic.westeurope-1.eventgrid.azure.net/api/events",
        }
    )

    assert Notifier.from_settings(configured, state).channels == ["slack", "eventgrid", "log"]
    assert Notifier.from_settings(settings, state).channels == ["log"]


def test_a_webhook_without_its_secret_is_a_settings_error(settings: Settings, state: BlobStateStore) -> None:
    unsigned = settings.model_copy(update={"notify_webhook_url": "https://ops.example.org/hooks"})

    with pytest.raises(SettingsError, match="MLOPS_NOTIFY_WEBHOOK_SECRET is required with MLOPS_NOTIFY_WEBHOOK_URL"):
        Notifier.from_settings(unsigned, state)


def test_a_plain_http_webhook_off_loopback_is_a_settings_error(settings: Settings, state: BlobStateStore) -> None:
    insecure = settings.model_copy(update={"notify_teams_url": "http://prod.logic.azure.com/workflows/x?sig=SECRET"})

    with pytest.raises(SettingsError, match="MLOPS_NOTIFY_TEAMS_URL must be an https URL") as error:
        Notifier.from_settings(insecure, state)
    assert "SECRET" not in str(error.value)


class Broken:
    """A channel with a bug: its error quotes a secret URL."""

    name = "slack"

    def send(self, notification: Notification) -> None:
        raise RuntimeError("boom at https://hooks.slack.com/services/T0/B0/TOPSECRET")


def test_an_unexpected_channel_error_is_reported_by_type_only(state: BlobStateStore, receiver: Receiver) -> None:
    notifier = Notifier([TeamsChannel(receiver.url + "/teams", FAST), Broken(), LogChannel()], state)

    with pytest.raises(NotifyError, match="slack: failed: unexpected RuntimeError") as error:
        notifier.notify(rejected())

    assert "TOPSECRET" not in str(error.value)
    assert "TOPSECRET" not in str(state.get("notifications", "model.rejected:credit-risk:3.slack"))
    assert counts(receiver)["/teams"] == 1


def test_every_channel_hears_the_same_decisions_one_incident_one_failure_notice_one_recovery(
    notifier: Notifier, receiver: Receiver, state: BlobStateStore
) -> None:
    """The issue's run: a reconcile failing with four error texts once reached Slack and Teams four times, and the
    channels heard different numbers of decisions. Now, on the real channels (Slack failing for a while in the
    middle, as it did), each channel hears the same decisions: one failure notice, one recovery."""
    import dataclasses

    from devhost.receiver import summary
    from shared.adapters.storage.stores import Stores
    from shared.reactor import outcomes
    from tests.unit.test_isolation_fakes import fake_services

    services = dataclasses.replace(fake_services(), state=Stores(state), _notifier=notifier)
    notifier.notify(rejected(9))
    receiver.script(*[503] * FAST.attempts, path="/slack")  # Slack is down when the incident opens
    for text in ("HTTP 503", "timeout", "HTTP 502", "the job's record is corrupt", "timeout"):
        outcomes.report_failure(services, "reconcile", "credit-risk:9", RuntimeError(text), "resync")
    outcomes.recovered(services, "reconcile", "credit-risk:9", "resync")

    heard = {path: [(found.kind, found.title) for found in map(summary, (r.body for r in receiver.accepted(path)))
                    if found] for path in ("/teams", "/slack", "/webhook")}
    assert heard["/teams"] == heard["/slack"] == heard["/webhook"] == [
        ("model.rejected", "credit-risk 9 rejected"),
        ("work.failed", "The reconcile of credit-risk:9 failed"),
        ("work.recovered", "The reconcile of credit-risk:9 recovered"),
    ]
    ids = {r.headers["webhook-id"] for r in receiver.accepted("/webhook")}
    assert len(ids) == 3, "one webhook id per decision"
