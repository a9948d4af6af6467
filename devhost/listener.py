"""What every trigger listener of the local host shares: one loop on a thread, stopped in two steps."""

from __future__ import annotations

import threading


class Listener:
    """Runs `_loop` on a daemon thread; `_loop` returns once `_stop` is set.

    The host stops listeners in two steps, so that all of them stop taking new work at
    once (`request_stop`) before it waits for each one's work in hand (`stop`).
    """

    def __init__(self, thread_name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Stop taking new work; `stop` then waits for the work in hand."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        raise NotImplementedError
