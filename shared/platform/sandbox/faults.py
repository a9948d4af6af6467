"""Injected platform faults: the next N calls of a port method fail as Azure ML can.

Faults live in the sandbox container, so a fault injected from a test or a CLI reaches
the app's own process. `503` and `timeout` raise port.Transient, `429` raises
port.TryLater with a retry-after, as the Azure ML adapter maps those answers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from shared.platform.port import MLPlatform, PlatformError, Transient, TryLater
from shared.platform.sandbox.store import Rejected, SandboxStore

KIND, KEY = "faults", "platform"
ERRORS = ("503", "429", "timeout")
PORT_METHODS = frozenset(name for name in vars(MLPlatform) if not name.startswith("_"))
RETRY_AFTER_SECONDS = 1.0

F = TypeVar("F", bound=Callable[..., Any])


def inject(store: SandboxStore, method: str, error: str = "503", times: int = 1) -> None:
    """Make the next `times` calls of port method `method` fail with `error`."""
    if method not in PORT_METHODS:
        raise Rejected(f"{method!r} is not a port method; one of: {', '.join(sorted(PORT_METHODS))}")
    if error not in ERRORS:
        raise Rejected(f"fault {error!r} is not one of {', '.join(ERRORS)}")
    if not isinstance(times, int) or times < 1:
        raise Rejected(f"times must be a positive integer, got {times!r}")

    def change(doc: dict[str, Any] | None) -> dict[str, Any]:
        doc = doc or {}
        doc[method] = {"error": error, "remaining": times}
        return doc

    store.update(KIND, KEY, change)


def clear(store: SandboxStore) -> None:
    store.delete(KIND, KEY)


def take(store: SandboxStore, method: str) -> PlatformError | None:
    """Consume one pending fault of `method`, if any, and return the error to raise."""
    doc = store.get(KIND, KEY)
    if not doc or not doc.get(method, {}).get("remaining"):
        return None
    taken: dict[str, Any] = {}

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        current = current or {}
        taken.clear()
        fault = current.get(method)
        if fault and fault.get("remaining", 0) > 0:
            taken.update(fault)
            fault["remaining"] -= 1
            if not fault["remaining"]:
                del current[method]
        return current

    store.update(KIND, KEY, change)
    if not taken:
        return None
    if taken["error"] == "429":
        return TryLater(f"injected fault: 429 Too Many Requests on {method}", retry_after=RETRY_AFTER_SECONDS)
    if taken["error"] == "timeout":
        return Transient(f"injected fault: {method} timed out")
    return Transient(f"injected fault: 503 Service Unavailable on {method}")


def faultable(method: F) -> F:
    """Decorate a port method of the sandbox so that injected faults fire before it runs."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        error = take(self.store, method.__name__)
        if error is not None:
            raise error
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
