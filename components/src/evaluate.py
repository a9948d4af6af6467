"""The model_evaluate component: score a labelled table with an ONNX model, log the metrics to MLflow.

    python evaluate.py --model <folder with one .onnx> --test-data <folder of tables>

Metrics: rows, accuracy, precision, recall, f1, auc (when the model gives probabilities)
and latency_p95_ms (single-row scoring, as an online endpoint sees it). They go to the
step's MLflow run (Azure ML sets MLFLOW_TRACKING_URI and MLFLOW_RUN_ID for the step).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tables import features_and_labels, read_table

LATENCY_SAMPLES = 200


def onnx_file(folder: str) -> Path:
    root = Path(folder)
    found = [root] if root.is_file() else sorted(root.rglob("*.onnx"))
    if len(found) != 1:
        raise SystemExit(f"the model folder has {len(found)} .onnx files, expected one")
    return found[0]


def load_session(path: Path) -> Any:
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime raises its own exception types for every kind of bad file
        raise SystemExit(f"the model {path.name} does not load in ONNX Runtime: {error}") from None


def feature_names(session: Any) -> list[str] | None:
    """The feature columns the model was trained on, from its metadata (`feature_names`), if recorded."""
    recorded = session.get_modelmeta().custom_metadata_map.get("feature_names")
    return json.loads(recorded) if recorded else None


def predict(session: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels, probabilities of the positive class or None)."""
    names = [output.name for output in session.get_outputs()]
    results = dict(zip(names, session.run(None, {session.get_inputs()[0].name: features}), strict=True))
    labels = np.asarray(results.get("label", results[names[0]])).reshape(-1).astype(np.int64)
    probabilities = results.get("probabilities")
    positive = None if probabilities is None else np.asarray(probabilities)[:, -1]
    return labels, positive


def precision_recall(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    true_positive = float(((predicted == 1) & (labels == 1)).sum())
    precision = true_positive / max(float((predicted == 1).sum()), 1.0)
    recall = true_positive / max(float((labels == 1).sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def latency_p95_ms(session: Any, features: np.ndarray) -> float:
    timings = []
    for row in features[:LATENCY_SAMPLES]:
        start = time.perf_counter()
        predict(session, row[None, :])
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 95)) if timings else 0.0


def evaluate(model: str, test_data: str) -> dict[str, float]:
    session = load_session(onnx_file(model))
    features, labels = features_and_labels(read_table(test_data), feature_names(session))
    predicted, positive = predict(session, features)
    metrics = {
        "rows": float(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        **precision_recall(labels, predicted),
        "latency_p95_ms": latency_p95_ms(session, features),
    }
    area = None if positive is None else auc(labels, positive)
    if area is not None:
        metrics["auc"] = area
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--test-data", required=True)
    args = parser.parse_args(argv)
    metrics = evaluate(args.model, args.test_data)
    import mlflow

    mlflow.log_metrics(metrics)
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
