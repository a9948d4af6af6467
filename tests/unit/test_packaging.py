"""`pip install .` gives operators the `opsctl` command, and the wheel holds only the CLI (the
function app is deployed as a folder, never as a wheel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import venv
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(out), "-q"],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("*.whl")
    return found


def test_the_wheel_holds_the_cli_only_with_its_entry_point_and_its_two_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"opsctl"}
    assert {"opsctl/cli.py", "opsctl/commands.py", "opsctl/client.py", "opsctl/__main__.py"} <= set(names)
    assert "[console_scripts]\nopsctl = opsctl.cli:main" in entry_points
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert sorted(req.split(">")[0].split("=")[0].strip() for req in requires) == ["azure-identity", "requests"]


@pytest.fixture
def health_api() -> Iterator[tuple[str, list[str | None]]]:
    keys: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            keys.append(self.headers.get("x-functions-key"))
            body = json.dumps({"ok": True, "platform": "azureml at https://127.0.0.1:8443/",
                               "policy": {"ok": True, "detail": "1 rules"}, "storage": {"ok": True, "detail": "s"}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", keys
    server.shutdown()
    server.server_close()


def test_installing_the_wheel_in_a_fresh_venv_gives_a_working_opsctl(
        wheel: Path, tmp_path: Path, health_api: tuple[str, list[str | None]]) -> None:
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    opsctl = target / "bin" / "opsctl"
    assert opsctl.exists()
    # The fresh venv has no `requests` (no index here): lend this one's, and nothing of the repo.
    lent = tmp_path / "lent"
    lent.mkdir()
    (lent / "requests").symlink_to(Path(requests.__file__).parent)
    for dependency in ("urllib3", "idna", "certifi", "charset_normalizer"):
        module = __import__(dependency)
        assert module.__file__, dependency
        (lent / dependency).symlink_to(Path(module.__file__).parent)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(lent), "HOME": str(tmp_path)}
    url, keys = health_api
    ran = subprocess.run([str(opsctl), "--url", url, "--key", "k", "health"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0].split() == ["check", "ok", "detail"] and "azureml at" in ran.stdout
    assert keys == ["k"]
    where = subprocess.run([str(python), "-c", "import opsctl; print(opsctl.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env=env, timeout=60)
    assert where.stdout.strip().startswith(str(target))  # the installed copy, not the checkout's
