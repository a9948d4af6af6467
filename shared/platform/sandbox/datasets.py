"""Labelled datasets for sandbox jobs: a feature matrix and binary labels, stored as `.npz`."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.platform.port import NotFound
from shared.platform.sandbox.store import Rejected, SandboxStore, check_name

if TYPE_CHECKING:
    import numpy as np

KIND = "datasets"


def create(store: SandboxStore, name: str, features: Any, labels: Any) -> dict[str, Any]:
    """Store (or replace) dataset `name`: `features` is rows x columns, `labels` one per row."""
    import numpy as np

    check_name("dataset", name)
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or not x.shape[0] or not x.shape[1]:
        raise Rejected(f"dataset {name!r}: features must be a non-empty 2-D table, got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise Rejected(f"dataset {name!r}: expected {x.shape[0]} labels, got shape {y.shape}")
    buffer = io.BytesIO()
    np.savez(buffer, features=x, labels=y)
    store.put_file("datasets", name + ".npz", data=buffer.getvalue())
    doc = {"name": name, "rows": int(x.shape[0]), "columns": int(x.shape[1]), "created": datetime.now(UTC).isoformat()}
    store.update(KIND, name, lambda _: doc)
    return doc


def load(store: SandboxStore, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of dataset `name`; NotFound if it was never created."""
    import numpy as np

    check_name("dataset", name)
    if store.get(KIND, name) is None:
        raise NotFound(f"dataset {name!r} does not exist in the sandbox (create it with create_dataset)")
    with np.load(io.BytesIO(store.get_file("datasets", name + ".npz"))) as data:
        return data["features"], data["labels"]
