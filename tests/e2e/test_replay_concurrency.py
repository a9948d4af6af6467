"""Replays are idempotent on the local host: four concurrent `POST /api/ops/events/replay` of one dead letter
requeue it once; the three others answer 409 naming when (and by whom) it was replayed. Once all four answered 200
"requeued" and the work item was queued four times."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

from devhost.entra import LocalEntraStack
from devhost.process import HostProcess
from shared.domain.work import DeadLetter, WorkItem
from tests.e2e.test_webhook import store

pytestmark = pytest.mark.e2e

OPERATOR = "carol"
KEY = "replay-concurrency-probe"


def test_four_concurrent_replays_of_one_dead_letter_requeue_it_once(host: HostProcess,
                                                                    entra: LocalEntraStack) -> None:
    item = WorkItem(key=KEY, event={"id": "evt-replay-concurrency", "eventType": "not-an-aml-event"})
    letter = DeadLetter(message=item.model_dump_json(), dequeue_count=5, reason="UnknownEventType: probe",
                        time=datetime.now(UTC))
    store(host).put("deadletter", KEY, letter.model_dump(mode="json"))
    token = entra.token_for(OPERATOR)
    start = threading.Barrier(4)

    def replay(_: int) -> requests.Response:
        start.wait()
        return requests.post(f"{host.url}/api/ops/events/replay", json={"kind": "deadletter", "key": KEY},
                             headers={"Authorization": f"Bearer {token}"}, timeout=60)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(replay, range(4)))

    assert sorted(answer.status_code for answer in answers) == [200, 409, 409, 409], [a.text for a in answers]
    [done] = [answer.json() for answer in answers if answer.status_code == 200]
    assert done == {"kind": "deadletter", "key": KEY, "outcome": "requeued"}
    for refused in (answer.json() for answer in answers if answer.status_code == 409):
        assert refused["field"] == "key" and f"dead letter {KEY!r} was already replayed at" in refused["error"]
    replays = [entry for entry in store(host).read_audit() if entry.action == "ops.replay"]
    assert [entry.outcome for entry in replays] == ["requeued"]
