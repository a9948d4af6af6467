"""Labelled tables as the components read them: every .parquet / .csv file of a folder, column `label`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "label"


def read_table(folder: str) -> pd.DataFrame:
    """All table files under `folder` (a file path is read alone), in name order, as one frame."""
    root = Path(folder)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in (".parquet", ".csv"))
    if not files:
        raise SystemExit(f"no .parquet or .csv file in {folder}")
    frames = [pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path) for path in files]
    table = pd.concat(frames, ignore_index=True)
    if LABEL not in table.columns:
        raise SystemExit(f"the table in {folder} has no column {LABEL!r} (columns: {', '.join(table.columns)})")
    return table


def features_and_labels(table: pd.DataFrame, names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(float32 features, int64 labels); `names` picks and orders the feature columns (default: all but label)."""
    columns = names or [column for column in table.columns if column != LABEL]
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise SystemExit(f"the table has no feature column(s) {', '.join(missing)}")
    return table[columns].to_numpy(dtype=np.float32), table[LABEL].to_numpy(dtype=np.int64)
