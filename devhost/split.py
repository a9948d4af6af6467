"""The local host in two processes, as Azure runs the app: queue triggers apart from the HTTP front end.

In Azure the Functions host (.NET) listens for triggers, serves HTTP and polls and settles queue messages
outside the Python worker, which only runs the functions it is sent
(https://github.com/Azure/azure-functions-host/wiki/Language-Extensibility); on the Flex Consumption plan
the HTTP triggers scale as one group of instances and every other function on instances of its own
(https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#per-function-scaling), so the
Event Grid intake never shares a process with the queue worker. `python -m devhost` does the same on one
machine: it serves HTTP, the extension webhooks, the admin routes and the timers (`FRONT_KINDS`), and starts
`python -m devhost --triggers queue` beside it. The two share nothing but storage, as instances do.

The parent opens its HTTP server once the child's listeners run (the child says so on a pipe of its own), so
that a host that answers has its queues, as a single process had. The child writes where its parent writes
(one log). It ends with its parent: the parent stops it on the way
out (SIGTERM: it finishes the work in hand, as a host that drains), and if the parent dies without doing so
(killed), the pipe the child reads from closes and the child exits at once, as the instance would have with it.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from devhost.host import ALL_KINDS

log = logging.getLogger("devhost.split")
QUEUE_KINDS = frozenset({"queue"})
FRONT_KINDS = ALL_KINDS - QUEUE_KINDS
STOP_SECONDS = 15.0
"""How long the parent waits for the child to finish its work in hand before killing it."""
READY = b"ready"


class QueueProcess:
    """`python -m devhost --triggers queue` as a child of this process, stopped with it.

    `on_exit(code)` is called if the child exits while not asked to stop (a crash): the host is then not
    whole, and its caller stops it rather than serve without a queue worker.
    """

    def __init__(self, app_dir: Path, keys_file: Path, on_exit: Callable[[int], None]) -> None:
        self.app_dir, self.keys_file, self._on_exit = app_dir, keys_file, on_exit
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._ready = -1

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> QueueProcess:
        self._ready, ready = os.pipe()
        command = [sys.executable, "-m", "devhost", "--triggers", ",".join(sorted(QUEUE_KINDS)),
                   "--app-dir", str(self.app_dir), "--keys", str(self.keys_file), "--exit-with-parent",
                   "--ready-fd", str(ready)]
        # stdin is the pipe the child watches: it closes when this process dies, however it dies.
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(ready,))
        os.close(ready)
        log.info("Queue triggers run in process %d", self._process.pid)
        threading.Thread(target=self._watch, name="devhost-queue-process", daemon=True).start()
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until the child's listeners run; RuntimeError if it exits first or takes longer than `timeout`."""
        readable, _, _ = select.select([self._ready], [], [], timeout)
        said = os.read(self._ready, len(READY)) if readable else b""
        os.close(self._ready)
        if said != READY:
            state = "exited" if readable else f"did not start its listeners within {timeout:.0f} s"
            raise RuntimeError(f"the queue triggers' process {self.pid} {state}")

    def request_stop(self) -> None:
        """Ask the child to stop (it finishes its work in hand); `stop` waits for it."""
        self._stopping.set()
        if self._process and self._process.poll() is None:
            self._process.terminate()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self.request_stop()
        if self._process is None:
            return
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("the queue process did not stop within %.0f s: killing it", timeout)
            self._process.kill()
            self._process.wait()
        if self._process.stdin:
            self._process.stdin.close()

    def _watch(self) -> None:
        assert self._process is not None
        code = self._process.wait()
        if not self._stopping.is_set():
            log.error("the queue process exited with %s while the host runs: stopping the host", code)
            self._on_exit(code)


def report_ready(fd: int) -> None:
    """Tell the parent (`QueueProcess.wait_ready`) that this process's listeners run."""
    os.write(fd, READY)
    os.close(fd)


def exit_with_parent(pipe: BinaryIO | None = None) -> None:
    """End this process at once when the parent's end of `pipe` (stdin) closes: the parent died without
    stopping it. Watches from a daemon thread."""
    stream = pipe or sys.stdin.buffer

    def watch() -> None:
        while stream.read(4096):
            pass  # the parent writes nothing; only the end of the pipe matters
        log.error("the parent host process is gone: exiting with it")
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=watch, name="devhost-parent-watch", daemon=True).start()
