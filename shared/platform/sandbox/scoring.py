"""ONNX Runtime sessions (cached per process) and the arithmetic of scoring."""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

from shared.platform.port import PlatformError
from shared.platform.sandbox.store import Rejected

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime

MAX_ROWS = 10_000


class ScoringFailed(PlatformError):
    """The deployment failed to score the request (HTTP 500 from the endpoint)."""


class SessionCache:
    """ONNX sessions by the sha256 of the model file: versions are immutable, so never stale."""

    def __init__(self) -> None:
        self._sessions: dict[str, onnxruntime.InferenceSession] = {}
        self._lock = threading.Lock()

    def get(self, sha256: str, load: Any) -> onnxruntime.InferenceSession:
        """The session of model `sha256`; `load()` returns the file's bytes on first use."""
        session = self._sessions.get(sha256)
        if session is None:
            with self._lock:
                session = self._sessions.get(sha256) or new_session(load())
                self._sessions[sha256] = session
        return session


SESSIONS = SessionCache()


def new_session(data: bytes) -> onnxruntime.InferenceSession:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Sandbox models are tiny: one thread per request beats a pool fighting over two cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def as_rows(rows: object) -> np.ndarray:
    """A float32 matrix from a JSON list of equal-length numeric rows; Rejected saying what is wrong."""
    import numpy as np

    if not isinstance(rows, list) or not rows:
        raise Rejected("'inputs' must be a non-empty list of rows")
    if len(rows) > MAX_ROWS:
        raise Rejected(f"'inputs' has {len(rows)} rows; at most {MAX_ROWS} per request")
    width = len(rows[0]) if isinstance(rows[0], list) else -1
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width or not width:
            raise Rejected(f"inputs[{index}] must be a list of {max(width, 1)}+ numbers like inputs[0]")
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in row):
            raise Rejected(f"inputs[{index}] holds a value that is not a number")
    return np.asarray(rows, dtype=np.float32)


def predict(session: onnxruntime.InferenceSession, rows: np.ndarray) -> dict[str, list[Any]]:
    """`predictions` (the first output) and, for classifiers, `probabilities` per class."""
    feed = session.get_inputs()[0]
    width = feed.shape[1] if len(feed.shape) == 2 else None
    if isinstance(width, int) and rows.shape[1] != width:
        raise Rejected(f"the model expects {width} features per row, got {rows.shape[1]}")
    outputs = session.run(None, {feed.name: rows})
    result = {"predictions": outputs[0].tolist()}
    if len(outputs) > 1 and getattr(outputs[1], "ndim", 0) == 2:
        result["probabilities"] = outputs[1].tolist()
    return result


def choose(weights: dict[str, int], rng: random.Random) -> str | None:
    """A deployment drawn by traffic weight, or None when no deployment has traffic."""
    live = [(name, weight) for name, weight in sorted(weights.items()) if weight > 0]
    if not live:
        return None
    names, values = zip(*live, strict=True)
    return rng.choices(names, weights=values)[0]
