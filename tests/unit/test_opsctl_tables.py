"""opsctl's tables and views: columns that fit the terminal, long cells wrapped and never cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl import client, views
from opsctl.tables import fields, split_text, table


def test_tables_align_their_columns_under_a_rule() -> None:
    text = table(["endpoint", "state"], [["prod/credit-risk", "progressing"], ["prod/x", "paused"]], width=120)
    assert text.splitlines() == [
        "endpoint          state",
        "----------------  -----------",
        "prod/credit-risk  progressing",
        "prod/x            paused",
    ]


def test_a_long_cell_wraps_within_the_width_and_keeps_every_word() -> None:
    reason = "failed gates: " + ", ".join(f"metric_{n} 0.{n}1 < 0.9" for n in range(15))
    text = table(["time", "action", "reason"], [["10:00:00", "rolled_back", reason], ["10:01:00", "retired", "ok"]],
                 width=60)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert len(lines) > 4  # the reason took more than one line
    continuation = [line for line in lines[3:] if line.startswith(" ")]
    assert continuation and all(line[:21].strip() == "" for line in continuation)  # under its own column
    assert " ".join(line[21:].strip() for line in lines[2:-1]).split() == reason.split()
    assert lines[-1].split() == ["10:01:00", "retired", "ok"]


def test_only_the_wrapping_columns_shrink_and_not_below_a_readable_floor() -> None:
    text = table(["subject", "reason"], [["models/credit-risk:2", "x " * 40]], width=30, wrap={1})
    first = text.splitlines()[2]
    assert first.startswith("models/credit-risk:2  ")  # the other column keeps its width
    assert all(len(line) <= 20 + 2 + 16 for line in text.splitlines()[2:])


def test_fields_wrap_long_values_under_themselves() -> None:
    text = fields([("state", "ok"), ("analysis", "fail - " + "error rate 0.3 > 0.02; " * 6)], width=50)
    lines = text.splitlines()
    assert lines[0] == "state     ok"
    assert lines[1].startswith("analysis  fail - ") and all(line.startswith(" " * 10) for line in lines[2:])
    assert max(len(line) for line in lines) <= 50


def test_rollout_progress_reads_the_step() -> None:
    record = {"phase": "step", "step": 1, "plan": {"steps": [10, 50, 100]}}
    assert views.current_percent(record) == "50% (step 2/3)"
    assert views.current_percent({**record, "phase": "mirror"}) == "mirror"
    assert views.current_percent({**record, "step": -1}) == "-"


def test_traffic_is_the_live_split_then_the_target_and_never_the_baseline() -> None:
    ended = {"baseline": {"traffic": {"blue": 100}}, "target": None, "history": [{"traffic": {"green": 100}}]}
    assert views.traffic_now({**ended, "live": {"traffic": {"green": 100}}}) == "green=100%"
    assert views.traffic_now({**ended, "target": {"traffic": {"blue": 50, "green": 50}}}) == \
        "blue=50%, green=50% (target)"
    assert views.traffic_now(ended) == "?"
    assert split_text({}) == "-"


@pytest.mark.parametrize(("actor", "shown"), [
    ("timer", "timer"), ("api:alice", "api:alice"), ("resync", "resync"),
    ("0123456789abcdef0123456789abcdef", "id 01234567"), ("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b", "id 6f1c2a9e"),
])
def test_an_actor_that_is_an_id_is_never_shown_whole(actor: str, shown: str) -> None:
    assert views.actor_name(actor, {}) == shown


def test_names_come_from_the_admin_request_else_the_event() -> None:
    ops = [{"action": "rollout", "reason": "started"}, {"action": "ops.rollout.start", "reason": "v2 (by api:bob)"}]
    event = [{"action": "intake", "subject": "models/credit-risk:2", "correlation_id": "e"}]
    assert views.name_from_audit(ops) == "api:bob"
    assert views.name_from_audit(event) == "event credit-risk:2"
    assert views.name_from_audit([]) is None


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:7071", True), ("http://localhost:7071", True), ("http://[::1]:7071", True),
    ("https://my-app.azurewebsites.net", False), ("http://10.0.0.4:7071", False),
])
def test_the_local_key_file_is_only_for_local_urls(url: str, local: bool) -> None:
    assert client.is_local(url) is local


def test_a_named_key_file_must_be_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_FUNCTION_KEY", raising=False)
    with pytest.raises(client.ApiFailure, match="cannot read the key file"):
        client.function_key("https://remote", None, tmp_path / "missing.json")
    (tmp_path / "keys.json").write_text('{"master": "m"}')
    with pytest.raises(client.ApiFailure, match="has no 'function' key"):
        client.function_key("https://remote", None, tmp_path / "keys.json")


def test_a_lifecycle_shows_its_test_job_link_and_who_reviewed_it() -> None:
    record = {
        "model": "credit-risk", "version": "7", "workspace": "dev", "rule": "credit-risk", "stage": "promoted",
        "test_job": "test-credit-risk-v7", "test_job_url": "https://ml.azure.com/runs/test-credit-risk-v7",
        "review": {"approved": True, "by": "bob@contoso.test", "via": "api", "at": "2026-12-01T09:30:12Z",
                   "reason": "checked the gate table"},
        "history": [],
    }
    shown = views.lifecycle(record, {}, width=200)
    assert "test-credit-risk-v7 https://ml.azure.com/runs/test-credit-risk-v7" in shown
    assert "approved by bob@contoso.test (api) at 2026-12-01T09:30: checked the gate table" in shown
    unreviewed = views.lifecycle({**record, "review": None}, {}, width=200).splitlines()
    assert "review    -" in unreviewed


def test_the_audit_table_names_who_acted_from_their_verified_token() -> None:
    entries = [{"time": "2026-12-07T06:00:00+00:00", "action": "review", "outcome": "approved", "by": "Bob Approver",
                "by_oid": "b0b", "subject": "credit-risk:5", "reason": "checked (by Bob Approver)"},
               {"time": "2026-12-07T06:00:01+00:00", "action": "lifecycle", "outcome": "promoted",
                "subject": "credit-risk:5", "reason": "promoted to registry:shared"}]
    lines = views.audit(entries, width=160).splitlines()
    assert lines[0].split() == ["time", "action", "outcome", "by", "subject", "reason"]
    assert "Bob Approver" in lines[2] and lines[3].split()[3] == "-"
