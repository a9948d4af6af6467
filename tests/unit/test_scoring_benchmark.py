"""The scoring benchmark's step counter: the engine's CPU by step, counted where each step runs."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from benchmarks.scoring import STEPS, step_line, step_timer
from shared.scoring import pipeline, session


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever `step_timer` wraps is put back after the test."""
    for name in [name for names in STEPS.values() for name in names if hasattr(pipeline, name)]:
        monkeypatch.setattr(pipeline, name, getattr(pipeline, name))
    monkeypatch.setattr(session.LoadedModel, "run", session.LoadedModel.run)


@pytest.mark.usefixtures("restored")
def test_each_step_is_counted_and_the_rest_is_what_no_step_spent() -> None:
    spent = step_timer()
    data = b"".join(b"%d,%d.5,%d\n" % (i, i, i) for i in range(20_000))

    table, _, _ = pipeline.parse_csv(data, ["id", "a", "b"], ["a", "b"], ["id"], first_row=1)
    pipeline.to_matrix(table, ["a", "b"], np.dtype(np.float32))
    writer: Any = pipeline.open_writer("csv", io.BytesIO(), table.schema, header=True)  # type: ignore[arg-type]
    writer.write_table(table)
    writer.close()

    assert spent["parse"] > 0 and spent["copy"] > 0 and spent["write"] > 0
    assert spent["GET"] == spent["run"] == 0
    engine = {"cpu": sum(spent.values()) + 1.0, "steps": spent}
    assert float(step_line(engine, "rest", 1.0)) == pytest.approx(1.0, abs=0.01)
    assert table.num_rows == 20_000 and isinstance(table, pa.Table)
