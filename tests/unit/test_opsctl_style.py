"""opsctl on a terminal shows status symbols and colour, as `kubectl argo rollouts` does; piped, with
`--json`, with `NO_COLOR` or `TERM=dumb` it prints plain text. And it works from a folder outside the
checkout, finding the local stack that `./dev host` last started (issue 26: from any other folder it
answered `401: the function key is missing or wrong`)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl import cli, style
from opsctl.client import default_url, function_key, remember_local_stack
from tests.unit.test_opsctl_cli import FakeApi, api, rollout_record, unsigned  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def shown(fake: FakeApi, out: io.StringIO, *argv: str) -> str:
    assert cli.main(["--url", fake.url, "--key=k", *argv], out=out, credentials=fake.credentials) == 0
    style.off()
    return out.getvalue()


@pytest.fixture
def rollouts(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> FakeApi:  # noqa: F811
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    api.answer("GET", "ops/rollouts", {"items": [rollout_record("succeeded"), rollout_record("rolled_back")]})
    return api


def test_a_terminal_gets_symbols_and_colour_that_keep_the_columns_aligned(rollouts: FakeApi) -> None:
    text = shown(rollouts, Terminal(), "rollouts")
    assert "\x1b[32m✔ succeeded\x1b[0m" in text and "\x1b[31m✖ rolled_back\x1b[0m" in text
    plain = ESCAPE.sub("", text).splitlines()
    header, rows = plain[0], plain[2:]
    state, step = header.index("state"), header.index("step")
    assert [row[state:step].strip() for row in rows] == ["✔ succeeded", "✖ rolled_back"]
    assert all(row[step - 1] == " " and row[step] != " " for row in rows), "the next column starts as its header"


@pytest.mark.parametrize("how", ["pipe", "json", "NO_COLOR", "dumb"])
def test_plain_text_when_piped_asked_for_json_or_told_no_colour(rollouts: FakeApi, how: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "NO_COLOR":
        monkeypatch.setenv("NO_COLOR", "")  # any value, even empty, per no-color.org
    if how == "dumb":
        monkeypatch.setenv("TERM", "dumb")
    out = io.StringIO() if how == "pipe" else Terminal()
    text = shown(rollouts, out, *(["--json"] if how == "json" else []), "rollouts")
    assert "\x1b[" not in text and "✔" not in text and "✖" not in text
    assert "succeeded" in text


def test_outside_the_checkout_opsctl_finds_the_stack_dev_host_last_started(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".localdev").mkdir(parents=True)
    (checkout / ".localdev" / "connection.json").write_text(json.dumps({"host": "http://127.0.0.1:7171"}))
    (checkout / ".localdev" / "keys.json").write_text(json.dumps({"function": "the-local-key"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("OPSCTL_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("MLOPS_API_URL", "MLOPS_FUNCTION_KEY", "MLOPS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(elsewhere)
    assert default_url() == "http://127.0.0.1:7071", "nothing remembered: the Functions host's default"
    remembered = remember_local_stack(checkout)
    assert remembered.stat().st_mode & 0o777 == 0o600
    assert json.loads(remembered.read_text()) == {"checkout": str(checkout)}
    assert default_url() == "http://127.0.0.1:7171"
    assert function_key("http://127.0.0.1:7171", None, None) == "the-local-key"
    assert function_key("https://app.example", None, None) is None, "a local key never goes to a remote app"


def test_opsctl_run_from_a_folder_outside_the_repo_reaches_the_local_host_with_its_key(
        unsigned: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    checkout = tmp_path / "checkout"
    (checkout / ".localdev").mkdir(parents=True)
    (checkout / ".localdev" / "connection.json").write_text(json.dumps({"host": unsigned.url}))
    (checkout / ".localdev" / "keys.json").write_text(json.dumps({"function": "the-local-key"}))
    unsigned.answer("GET", "ops/health", {"platform": "local", "policy": {"ok": True}, "storage": {"ok": True}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {name: value for name, value in os.environ.items()
           if name not in ("MLOPS_API_URL", "MLOPS_FUNCTION_KEY", "MLOPS_KEY_FILE", "NO_COLOR")}
    env.update(OPSCTL_CONFIG_DIR=str(unsigned.config), PYTHONPATH=str(ROOT))
    monkeypatch.setenv("OPSCTL_CONFIG_DIR", str(unsigned.config))
    remember_local_stack(checkout)
    done = subprocess.run([sys.executable, "-m", "opsctl", "health"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [seen.key for seen in unsigned.seen if seen.path == "/api/ops/health"] == ["the-local-key"]
    assert "\x1b[" not in done.stdout, "piped: plain"
