"""Start Azurite (installed from npm into `node_modules/`) on loopback and wait for it."""

from __future__ import annotations

import contextlib
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
    local Entra ID, Azurite) takes its port from that range, so it can never be handed the same one."""
    low = _ephemeral_start()
    for candidate in random.sample(range(max(1024, low - 12_000), low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError("no free port below the ephemeral range")


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
    files). The table service keeps the state index (`shared.adapters.storage.index`)."""
    blob_port = blob_port or free_port()
    queue_port = queue_port or free_port()
    table_port = table_port or free_port()
    with contextlib.ExitStack() as stack:
        folder = location or stack.enter_context(tempfile.TemporaryDirectory(prefix="azurite-"))
        os.makedirs(folder, exist_ok=True)
        command = [
            _executable(), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
            "--location", folder,
            "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
            "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
        ]
        if tls:
            command += ["--cert", tls[0], "--key", tls[1]]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening() -> bool:
            """Whether Azurite listens on its three ports; RuntimeError with what it said if it exited instead."""
            if process.poll() is not None:
                said = process.stderr.read().decode(errors="replace").strip()[-2000:] if process.stderr else ""
                raise RuntimeError(f"Azurite exited with code {process.returncode} before it listened on ports "
                                   f"{blob_port}, {queue_port} and {table_port}: {said or 'it said nothing'}")
            return _listens(blob_port) and _listens(queue_port) and _listens(table_port)

        try:
            wait_until(listening, timeout=90, interval=0.1, what=f"Azurite to listen on ports {blob_port} (blob), "
                                                                  f"{queue_port} (queue) and {table_port} (table)")
            yield Azurite(blob_port, queue_port, process, "https" if tls else "http", table_port)
        finally:
            # Azurite shuts down at once on SIGINT; on SIGTERM it lingers for 10 s.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
