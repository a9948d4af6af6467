"""opsctl's output and argument handling, without a server."""

from __future__ import annotations

import pytest

from tools import opsctl


def test_tables_align_their_columns_under_a_rule() -> None:
    text = opsctl.table(["endpoint", "state"], [["prod/credit-risk", "progressing"], ["prod/x", "paused"]])
    assert text.splitlines() == [
        "endpoint          state",
        "----------------  -----------",
        "prod/credit-risk  progressing",
        "prod/x            paused",
    ]


def test_rollout_progress_reads_the_step_and_the_split() -> None:
    record = {"phase": "step", "step": 1, "plan": {"steps": [10, 50, 100]}, "target": None,
              "history": [{"traffic": {"blue": 90, "green": 10}}, {"traffic": {"blue": 50, "green": 50}}],
              "baseline": {"traffic": {"blue": 100}}}
    assert opsctl.current_percent(record) == "50% (step 2/3)"
    assert opsctl.split_text(opsctl.traffic_now(record)) == "blue=50%, green=50%"
    assert opsctl.current_percent({**record, "phase": "mirror"}) == "mirror"


def test_a_malformed_traffic_split_fails_before_any_request(capsys: pytest.CaptureFixture[str]) -> None:
    code = opsctl.main(["--url", "http://127.0.0.1:9", "traffic", "prod", "credit-risk", "blue=ninety"])
    assert code == 1
    assert "traffic: expected deployment=percent, got 'blue=ninety'" in capsys.readouterr().err


def test_replay_keeps_the_function_key_and_sends_the_record_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """`replay KIND KEY` used to write KEY over `--key`, so every replay answered 401."""
    sent: list[tuple[str, str, dict]] = []

    def call(self: opsctl.Client, method: str, path: str, body: dict | None = None, **_: object) -> dict:
        sent.append((self.headers.get("x-functions-key", ""), path, body or {}))
        return {"kind": "deadletter", "key": "abc", "outcome": "queued"}

    monkeypatch.setattr(opsctl.Client, "call", call)
    assert opsctl.main(["--key", "function-key", "replay", "deadletter", "abc"]) == 0
    assert sent == [("function-key", "events/replay", {"kind": "deadletter", "key": "abc"})]
