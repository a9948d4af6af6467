"""The scoring script online deployments run (components/onnx_score/score.py, code asset `onnx-score`):
the Azure ML inference server's contract, `init()` once and `run(raw_data)` per request."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from localaml import samples

SCORE = Path(__file__).resolve().parents[2] / "components" / "onnx_score" / "score.py"


def load_score() -> ModuleType:
    spec = importlib.util.spec_from_file_location("onnx_score", SCORE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_answers_predictions_and_probabilities_of_the_one_onnx_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(samples.good_model())
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    features, labels = samples.make_data(rows=50, seed=9)
    score = load_score()

    score.init()
    answer = score.run(json.dumps({"inputs": features.tolist()}))

    assert len(answer["predictions"]) == 50
    assert sum(p == y for p, y in zip(answer["predictions"], labels.tolist(), strict=True)) > 40
    assert all(len(row) == 2 and abs(sum(row) - 1) < 1e-5 for row in answer["probabilities"])


def test_init_refuses_a_folder_without_exactly_one_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))

    with pytest.raises(RuntimeError, match=r"holds 0 \.onnx files, expected one"):
        load_score().init()


def test_run_refuses_a_request_without_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.onnx").write_bytes(samples.good_model())
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    score = load_score()
    score.init()

    with pytest.raises(ValueError, match=r'must be \{"inputs"'):
        score.run(json.dumps({"data": [[1, 2]]}))
