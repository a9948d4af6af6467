"""Start Azurite (installed from npm into `node_modules/`) on loopback and wait for it."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devhost.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
# Azurite's fixed, publicly documented development account; not a secret.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    queue_port: int
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    table_port: int | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.scheme}://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={self.scheme}://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            + (f"TableEndpoint={self.scheme}://127.0.0.1:{self.table_port}/{ACCOUNT};" if self.table_port else "")
        )


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range: a port asked for in advance (the host's, named in
    the URLs the local services call back) is only bound later, and a server binding port 0 meanwhile (the
    local Entra ID, Azurite) takes its port from that range, so it can never be handed the same one.

    Ports asked for in advance can still meet each other before they are bound: each pytest-xdist worker
    draws from a slice of its own, and a process never hands out a port it handed out recently."""
    low = _ephemeral_start()
    ports = range(max(1024, low - 12_000), low)
    worker, workers = _test_worker()
    ports = ports[worker::workers]
    for candidate in random.sample(ports, min(200, len(ports))):
        if candidate in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        _handed_out.append(candidate)
        return candidate
    raise RuntimeError("no free port below the ephemeral range")


_handed_out: collections.deque[int] = collections.deque(maxlen=256)


def _test_worker() -> tuple[int, int]:
    """This pytest-xdist worker's number and the count of workers; (0, 1) outside such a run."""
    name, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if name.startswith("gw") and name[2:].isdigit() and count.isdigit() and int(name[2:]) < int(count):
        return int(name[2:]), int(count)
    return 0, 1


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _executable() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("Azurite is not installed: run `npm ci` in the project root (./dev does it)")
    return found


def _listens(port: int) -> bool:
    """Whether something accepts connections on the loopback `port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_azurite(
    location: str | None = None, blob_port: int = 0, queue_port: int = 0, tls: tuple[str, str] | None = None,
    table_port: int = 0,
) -> Iterator[Azurite]:
    """Run Azurite (blob, queue and table services) until the block ends; over HTTPS with `tls` (cert, key PEM
    files). The table service keeps the state index (`shared.adapters.storage.index`).

    Ports not given are chosen here; if another process binds one of them before Azurite does, Azurite is
    started again on new ones (a fresh-clone run lost a test to that race). Ports given are the caller's."""
    chosen_here = not (blob_port or queue_port or table_port)
    with contextlib.ExitStack() as stack:
        folder = location or stack.enter_context(tempfile.TemporaryDirectory(prefix="azurite-"))
        os.makedirs(folder, exist_ok=True)
        for attempt in range(1, 4):
            ports = (blob_port or free_port(), queue_port or free_port(), table_port or free_port())
            process = _start(folder, ports, tls)
            stack.callback(_stop, process)
            try:
                wait_until(functools.partial(_listening, process, ports), timeout=90, interval=0.1,
                           what=f"Azurite to listen on ports {ports[0]} (blob), {ports[1]} (queue) and "
                                f"{ports[2]} (table)")
                break
            except _PortTaken:
                if not chosen_here or attempt == 3:
                    raise
        yield Azurite(ports[0], ports[1], process, "https" if tls else "http", ports[2])


class _PortTaken(RuntimeError):
    """Azurite exited because a port it was given is in use."""


def _start(folder: str, ports: tuple[int, int, int], tls: tuple[str, str] | None) -> subprocess.Popen[bytes]:
    command = [
        _executable(), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
        "--location", folder,
        "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]),
        "--queueHost", "127.0.0.1", "--queuePort", str(ports[1]),
        "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
    ]
    if tls:
        command += ["--cert", tls[0], "--key", tls[1]]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _listening(process: subprocess.Popen[bytes], ports: tuple[int, int, int]) -> bool:
    """Whether Azurite listens on its three ports; RuntimeError with what it said if it exited instead."""
    if process.poll() is not None:
        said = process.stderr.read().decode(errors="replace").strip()[-2000:] if process.stderr else ""
        failure = _PortTaken if "EADDRINUSE" in said else RuntimeError
        raise failure(f"Azurite exited with code {process.returncode} before it listened on ports "
                      f"{ports[0]}, {ports[1]} and {ports[2]}: {said or 'it said nothing'}")
    return all(_listens(port) for port in ports)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Azurite shuts down at once on SIGINT; on SIGTERM it lingers for 10 s.
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
