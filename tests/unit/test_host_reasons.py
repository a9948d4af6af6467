"""`./dev host` prints each notification with its reason, not its title alone (issue 26: a newcomer saw
"credit-risk v3 rejected" and no gate): the summary (a rollback's cause) and the gates that did not pass,
read from the webhook's document as the receiver got it."""

from __future__ import annotations

import json

from shared.adapters.notify.webhook import payload
from shared.domain.decisions import Gate, judge
from shared.domain.notification import Notification
from tools.local_stack import reason_lines


def received(notification: Notification) -> object:
    return json.loads(payload(notification))


def test_a_rejection_prints_the_gates_that_failed() -> None:
    verdict = judge([Gate(metric="accuracy", min=0.8), Gate(metric="auc", min=0.85)],
                    {"accuracy": 0.478, "auc": 0.91}, None)
    told = Notification(id="model.rejected:credit-risk:3", kind="model.rejected", severity="warning",
                        title="credit-risk v3 rejected", summary="failed gates: accuracy 0.478 < 0.8",
                        subject="credit-risk:3", table=verdict.table())
    assert reason_lines(received(told)) == ["    failed gates: accuracy 0.478 < 0.8"]
    table_only = told.model_copy(update={"summary": ""})
    assert reason_lines(received(table_only)) == ["    failed gates: accuracy 0.478 (needs >= 0.8)"]


def test_a_pass_with_a_note_is_a_pass() -> None:
    verdict = judge([Gate(metric="auc", max_drop=0.01)], {"auc": 0.98}, None)
    assert verdict.table().rows[0][-1] == "pass (no champion yet)"
    told = Notification(id="model.tested:credit-risk:1", kind="model.tested", title="credit-risk v1 passed its gates",
                        subject="credit-risk:1", table=verdict.table())
    assert reason_lines(received(told)) == []


def test_a_rollback_prints_its_cause_and_a_title_only_notification_nothing() -> None:
    told = Notification(id="rollout.rolled_back:x", kind="rollout.rolled_back", severity="error",
                        title="Rollout of credit-risk v4 rolled back", subject="credit-risk",
                        summary="error rate 0.714 > 0.05 (5 errors in 7 requests)")
    assert reason_lines(received(told)) == ["    error rate 0.714 > 0.05 (5 errors in 7 requests)"]
    plain = Notification(id="n", kind="model.promoted", title="credit-risk v1 promoted", subject="credit-risk:1")
    assert reason_lines(received(plain)) == []
    assert reason_lines({"text": "a Slack body"}) == [] and reason_lines([1, 2]) == []


def test_the_host_s_traffic_rate_is_bounded_and_zero_switches_it_off() -> None:
    import argparse
    import contextlib

    import pytest

    from tools.local_stack import TRAFFIC_PER_SECOND, client_traffic, rate

    assert rate("0") == 0 and rate("2.5") == 2.5 and TRAFFIC_PER_SECOND == 10
    for wrong in ("-1", "201"):
        with pytest.raises(argparse.ArgumentTypeError, match="requests a second from 0"):
            rate(wrong)
    assert isinstance(client_traffic(None, 0), contextlib.nullcontext)  # type: ignore[arg-type]
