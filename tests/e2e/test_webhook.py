"""The Event Grid webhook of the local host, over real HTTP, as Event Grid uses it."""

from __future__ import annotations

import copy
import json
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from devhost.azurite import running_azurite
from devhost.process import HostProcess
from devhost.waiting import wait_until
from shared.adapters.storage.state import BlobStateStore
from shared.adapters.storage.stores import Stores
from shared.domain.events import dedupe_key
from tests.conftest import FIXTURES

WEBHOOK = "/runtime/webhooks/eventgrid"


def registered_event() -> dict:
    event = json.loads((FIXTURES / "aml-events/docs_eventgrid_schema/model_registered.json").read_text())[0]
    event["id"] = str(uuid.uuid4())
    return event


def post(host: HostProcess, body: object, *, raw: bytes | None = None, kind: str = "Notification") -> requests.Response:
    return requests.post(
        host.eventgrid_url,
        data=raw if raw is not None else json.dumps(body),
        headers={"aeg-event-type": kind, "Content-Type": "application/json"},
        timeout=30,
    )


def store(host: HostProcess) -> BlobStateStore:
    service = BlobServiceClient.from_connection_string(host.settings["AzureWebJobsStorage"])
    return BlobStateStore(service, host.settings["MLOPS_STATE_CONTAINER"])


def outcomes(host: HostProcess, event_id: str, action: str) -> list[str]:
    return [e.outcome for e in store(host).read_audit() if e.correlation_id == event_id and e.action == action]


def intake_outcomes(host: HostProcess, event_id: str, count: int = 1) -> list[str]:
    """Intake's outcomes for the event once `count` are audited: the worker audits each delivery's as it claims it."""

    def audited() -> list[str] | None:
        found = outcomes(host, event_id, "intake")
        return found if len(found) >= count else None

    return wait_until(audited)


def test_an_event_is_queued_and_reaches_the_worker(host: HostProcess) -> None:
    event = registered_event()
    assert post(host, [event]).status_code == 202
    assert intake_outcomes(host, event["id"]) == ["queued"]
    # The public sample's workspace is a placeholder no platform knows: ignored, once, not retried.
    assert wait_until(lambda: outcomes(host, event["id"], "react")) == ["ignored"]


def test_the_same_event_delivered_twice_in_sequence_is_handled_once(host: HostProcess) -> None:
    event = registered_event()
    assert post(host, [event]).status_code == 202
    assert post(host, [event]).status_code == 202
    assert sorted(intake_outcomes(host, event["id"], 2)) == ["duplicate", "queued"]
    wait_until(lambda: outcomes(host, event["id"], "react"))
    assert len(outcomes(host, event["id"], "react")) == 1


def test_the_same_event_delivered_concurrently_is_handled_once(host: HostProcess) -> None:
    event = registered_event()
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: post(host, [event]).status_code, range(6)))
    assert statuses == [202] * 6
    assert sorted(intake_outcomes(host, event["id"], 6)) == ["duplicate"] * 5 + ["queued"]
    wait_until(lambda: outcomes(host, event["id"], "react"))
    assert len(outcomes(host, event["id"], "react")) == 1


def test_subscription_validation_handshake(host: HostProcess) -> None:
    validation = json.loads((FIXTURES / "aml-events/subscription_validation_event.json").read_text())
    response = post(host, validation, kind="SubscriptionValidation")
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_cloudevents_abuse_protection_handshake(host: HostProcess) -> None:
    response = requests.options(
        host.eventgrid_url, headers={"WebHook-Request-Origin": "eventgrid.azure.net"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_a_cloudevent_is_accepted(host: HostProcess) -> None:
    event = json.loads((FIXTURES / "aml-events/specs_cloudevents/model_registered.json").read_text())
    event["id"] = str(uuid.uuid4())
    response = requests.post(
        host.eventgrid_url, json=event, headers={"Content-Type": "application/cloudevents+json"}, timeout=30
    )
    assert response.status_code == 202
    assert intake_outcomes(host, event["id"]) == ["queued"]


def test_the_webhook_needs_the_system_key(host: HostProcess) -> None:
    response = requests.post(f"{host.url}{WEBHOOK}?functionName=aml_events", json=[registered_event()], timeout=10)
    assert response.status_code == 401


def _missing_data(event: dict) -> dict:
    event.pop("data")
    return event


def _wrong_types(event: dict) -> dict:
    event["data"]["ModelVersion"] = {"major": 1}
    return event


def _unknown_type(event: dict) -> dict:
    event["eventType"] = "Microsoft.Storage.BlobCreated"
    return event


def _too_big(event: dict) -> dict:
    event["data"]["ModelProperties"] = {"padding": "x" * 2_000_000}
    return event


@pytest.mark.parametrize(
    ("change", "outcome", "reason"),
    [
        (_missing_data, "rejected", "'data' must be a JSON object"),
        (_wrong_types, "rejected", "data.modelVersion"),
        (_unknown_type, "ignored", "not an Azure ML event"),
        (_too_big, "rejected", "over Event Grid's limit"),
    ],
)
def test_bad_events_are_set_aside_with_a_reason_and_not_retried(host: HostProcess, change, outcome, reason) -> None:
    event = change(copy.deepcopy(registered_event()))
    assert post(host, [event]).status_code == 202, "a permanent failure must not make Event Grid retry"
    entries = [e for e in store(host).read_audit() if e.correlation_id == event["id"]]
    assert [e.outcome for e in entries] == [outcome]
    assert reason in entries[0].reason
    kept = store(host).list(outcome)
    assert [doc["event"]["id"] for doc in kept] == [event["id"]], "the event itself is kept for replay"


def test_a_body_that_is_not_json_is_refused_and_the_host_lives_on(host: HostProcess) -> None:
    response = post(host, None, raw=b"{not json")
    assert response.status_code == 400
    assert "not JSON" in response.text
    assert post(host, ["a string, not an event"]).status_code == 400
    assert post(host, [registered_event()]).status_code == 202


def test_an_event_of_900_kb_goes_through_a_claim_check_and_is_handled(host: HostProcess) -> None:
    event = registered_event()
    event["data"]["ModelTags"] = {f"tag{i}": "x" * 1000 for i in range(900)}
    key = dedupe_key(event)

    assert post(host, [event]).status_code == 202

    assert intake_outcomes(host, event["id"]) == ["queued"]
    assert wait_until(lambda: outcomes(host, event["id"], "react")) == ["ignored"], "reacted to like any other"
    assert not [k for k, _ in Stores(store(host)).claims.items() if k.startswith(key)], \
        "the claim is deleted once the event is handled"


def test_an_event_with_a_lone_surrogate_in_its_id_is_rejected_with_the_reason(host: HostProcess) -> None:
    event = registered_event()
    raw = json.dumps([event]).replace(event["id"], event["id"] + "\\ud800").encode()

    assert post(host, None, raw=raw).status_code == 202, "a permanent failure must not make Event Grid retry"

    [entry] = [e for e in store(host).read_audit() if e.correlation_id.startswith(event["id"])]
    assert entry.outcome == "rejected" and "'id' is not valid Unicode" in entry.reason
    assert [doc["event"]["id"] for doc in store(host).list("rejected")] == [event["id"] + "\\ud800"]
    assert post(host, [registered_event()]).status_code == 202, "the host lives on"


def test_in_a_storage_outage_the_webhook_fails_within_seconds(host_settings: dict, tmp_path) -> None:
    with running_azurite() as azurite:
        settings = {**host_settings, "AzureWebJobsStorage": azurite.connection_string}
        with HostProcess(settings, tmp_path / "keys.json", log_file=tmp_path / "host.log") as running:
            assert post(running, [registered_event()]).status_code == 202
            azurite.process.send_signal(signal.SIGINT)
            azurite.process.wait(timeout=10)

            started = time.monotonic()
            response = post(running, [registered_event()])
            elapsed = time.monotonic() - started

            assert response.status_code >= 500, "a transient fault: Event Grid redelivers"
            assert elapsed < 6, f"answered after {elapsed:.1f} s"
