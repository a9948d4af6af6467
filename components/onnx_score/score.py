"""Scoring script of managed online deployments (code asset `onnx-score`, environment `onnx-runtime`).

The Azure ML inference server calls `init()` once, then `run(raw_data)` per request
(docs: "Deploy and score a machine learning model by using an online endpoint",
scoring script section). The model is the one .onnx file under AZUREML_MODEL_DIR.

Request: `{"inputs": [[f0, f1, ...], ...]}`.
Answer: `{"predictions": [...], "probabilities": [[...], ...]}` (probabilities when the model gives them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

session: Any = None


def init() -> None:
    """Load the deployment's model: exactly one .onnx file under AZUREML_MODEL_DIR."""
    global session
    import onnxruntime

    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    found = sorted(root.rglob("*.onnx"))
    if len(found) != 1:
        raise RuntimeError(f"{root} holds {len(found)} .onnx files, expected one")
    session = onnxruntime.InferenceSession(str(found[0]), providers=["CPUExecutionProvider"])


def run(raw_data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """Score the rows of `{"inputs": [[...], ...]}`."""
    import numpy as np

    request = json.loads(raw_data) if isinstance(raw_data, (str, bytes)) else raw_data
    rows = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError('the request must be {"inputs": [[feature, ...], ...]} with at least one row')
    features = np.asarray(rows, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError("inputs must be a list of rows of numbers")
    names = [output.name for output in session.get_outputs()]
    results = dict(zip(names, session.run(None, {session.get_inputs()[0].name: features}), strict=True))
    predictions = np.asarray(results.get("label", results[names[0]])).reshape(-1)
    answer: dict[str, Any] = {"predictions": predictions.tolist()}
    if "probabilities" in results:
        answer["probabilities"] = np.asarray(results["probabilities"]).tolist()
    return answer
