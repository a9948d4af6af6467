"""Replaying a dead letter is idempotent: of concurrent replays of one dead letter, one requeues it and the others
answer 409 naming its state (`POST /api/ops/events/replay`, `handlers.replay`). Once, four concurrent replays all
answered 200 "requeued" and the work item was queued four times.

On fakes: the app's typed stores on the in-memory state store (whose lease is taken at once or not at all, as
Blob Storage grants it), a queue slow enough that the replays overlap."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.bootstrap import Services
from shared.domain.ports import NotFound
from shared.domain.work import DeadLetter, WorkItem
from shared.ops import handlers
from shared.ops.errors import ApiError
from shared.ops.handlers import Caller
from shared.ops.models import ReplayRequest
from tests.unit.test_isolation_fakes import START, fake_services

KEY = "k-dead"


class SlowQueue:
    """Keeps what it is sent, after a while (so that replays overlap); can be told to fail."""

    def __init__(self, seconds: float = 0.05, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.seconds, self.fail = seconds, fail
        self.lock = threading.Lock()

    def send(self, item: dict[str, Any], delay_seconds: float = 0) -> None:
        time.sleep(self.seconds)
        if self.fail:
            raise OSError("the queue is down")
        with self.lock:
            self.sent.append(item)


def services_with_a_dead_letter(queue: SlowQueue) -> Services:
    services = dataclasses.replace(fake_services(), work_queue=queue)  # type: ignore[arg-type]
    item = WorkItem(key=KEY, event={"id": "evt-1", "subject": "models/churn:1"})
    services.state.dead_letters.put(KEY, DeadLetter(message=item.model_dump_json(), dequeue_count=5,
                                                    reason="NotFound: no such model", time=START))
    return services


def replay(services: Services, who: str) -> tuple[int, str]:
    try:
        answer = handlers.replay(services, ReplayRequest(kind="deadletter", key=KEY), Caller(None, who))
    except ApiError as error:
        return error.status, error.message
    except NotFound as error:
        return 404, str(error)
    return 200, answer.outcome


def test_four_concurrent_replays_of_one_dead_letter_requeue_it_once_and_the_others_answer_409() -> None:
    queue = SlowQueue()
    services = services_with_a_dead_letter(queue)
    start = threading.Barrier(4)

    def one(number: int) -> tuple[int, str]:
        start.wait()
        return replay(services, f"c-{number}")

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(4)))

    assert sorted(status for status, _ in answers) == [200, 409, 409, 409], answers
    assert len(queue.sent) == 1 and queue.sent[0]["key"] == KEY
    for status, message in answers:
        if status == 409:
            assert f"dead letter {KEY!r} was already replayed at {START.isoformat()}" in message, message
    replays = [entry for entry in services.state.read_audit() if entry.action == "ops.replay"]
    assert [entry.outcome for entry in replays] == ["requeued"]
    assert services.state.dead_letters.get(KEY) is None


def test_a_replay_after_the_dead_letter_was_requeued_is_a_409_and_an_unknown_key_a_404() -> None:
    services = services_with_a_dead_letter(SlowQueue(0))
    assert replay(services, "c-1") == (200, "requeued")
    status, message = replay(services, "c-2")
    assert status == 409 and "already replayed at" in message and "by function-key" in message
    services.state.dead_letters.put("other", DeadLetter(message="{}", dequeue_count=5, reason="x", time=START))
    assert replay(services, "c-3")[0] == 409  # not a readable work item: nothing to replay (as before)
    with pytest.raises(NotFound):
        handlers.replay(services, ReplayRequest(kind="deadletter", key="never"), Caller(None, "c-4"))


def test_a_dead_letter_that_fails_again_after_a_replay_can_be_replayed_again() -> None:
    queue = SlowQueue(0)
    services = services_with_a_dead_letter(queue)
    assert replay(services, "c-1") == (200, "requeued")
    services.state.dead_letters.put(KEY, DeadLetter(message=WorkItem(key=KEY, event={"id": "evt-1"}).model_dump_json(),
                                                    dequeue_count=5, reason="again", time=START))
    assert replay(services, "c-2") == (200, "requeued")
    assert len(queue.sent) == 2


def test_a_replay_whose_send_fails_keeps_the_dead_letter_for_the_next_one() -> None:
    queue = SlowQueue(0, fail=True)
    services = services_with_a_dead_letter(queue)
    with pytest.raises(OSError):
        replay(services, "c-1")
    assert services.state.dead_letters.get(KEY) is not None
    queue.fail = False
    assert replay(services, "c-2") == (200, "requeued")
    assert len(queue.sent) == 1
