"""The pipelines sandbox jobs can run: `evaluate-model` and `retrain-model`.

Each takes the job record and returns (metrics, outputs). They run inside the job
runner process (`run_job`), never in the app's process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.platform.sandbox import datasets, models, scoring
from shared.platform.sandbox.metrics import percentile
from shared.platform.sandbox.store import Rejected

if TYPE_CHECKING:
    import numpy as np

    from shared.platform.sandbox.platform import SandboxPlatform

class ModelLoadError(RuntimeError):
    """The model file is not an ONNX model ONNX Runtime can run."""


Result = tuple[dict[str, float], dict[str, str]]
LATENCY_SAMPLES = 200


def check_inputs(pipeline: str, inputs: dict[str, str]) -> None:
    """Reject a submission whose inputs the pipeline cannot run with (Azure ML answers 400)."""
    if pipeline not in PIPELINES:
        raise Rejected(f"unknown pipeline {pipeline!r}; the sandbox runs {', '.join(sorted(PIPELINES))}")
    if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
        raise Rejected(f"{pipeline} inputs must map names to strings, got {inputs!r}")
    if "dataset" not in inputs:
        raise Rejected(f"{pipeline} needs input 'dataset' (the name of a sandbox dataset)")
    if pipeline == "evaluate-model":
        model_ref(inputs, "dev")


def model_ref(inputs: dict[str, str], workspace: str) -> tuple[str, str, str]:
    """(location, name, version) from `model_uri`, or `model_name` + `model_version` [+ `model_location`]."""
    if "model_uri" in inputs:
        return models.parse_uri(inputs["model_uri"], inputs.get("model_location", workspace))
    if "model_name" in inputs and "model_version" in inputs:
        return inputs.get("model_location", workspace), inputs["model_name"], inputs["model_version"]
    raise Rejected("evaluate-model needs input 'model_uri', or 'model_name' and 'model_version'")


def evaluate(platform: SandboxPlatform, job: dict[str, Any]) -> Result:
    """Score the labelled dataset with the model: accuracy, AUC, precision, recall, latency."""
    import numpy as np

    location, name, version = model_ref(job["inputs"], job["workspace"])
    features, labels = datasets.load(platform.store, job["inputs"]["dataset"])
    try:
        session = scoring.new_session(models.read_bytes(platform.store, location, name, version))
    except Exception as error:
        raise ModelLoadError(f"model {name}:{version} in {location} does not load in ONNX Runtime: {error}") from None
    outputs = scoring.predict(session, features)
    predicted = np.asarray(outputs["predictions"]).astype(np.int64)
    metrics = {
        "rows": float(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        **precision_recall(labels, predicted),
        "latency_p95_ms": latency_p95_ms(session, features),
    }
    if "probabilities" in outputs:
        area = auc(labels, np.asarray(outputs["probabilities"])[:, -1])
        if area is not None:
            metrics["auc"] = area
    return metrics, {"model_uri": models.model_uri(location, name, version)}


def retrain(platform: SandboxPlatform, job: dict[str, Any]) -> Result:
    """Train a fresh model on the dataset; with `register_as`, register it (ModelRegistered follows)."""
    import numpy as np

    from shared.platform.sandbox import samples

    inputs = job["inputs"]
    features, labels = datasets.load(platform.store, inputs["dataset"])
    data = samples.train_onnx(features, labels)
    predicted = np.asarray(scoring.predict(scoring.new_session(data), features)["predictions"])
    metrics = {"rows": float(len(labels)), "train_accuracy": float(np.mean(predicted == labels))}
    outputs: dict[str, str] = {}
    if inputs.get("register_as"):
        tags = {"trained_by_job": job["name"], "dataset": inputs["dataset"]}
        model = platform.register_model(inputs.get("register_in", job["workspace"]), inputs["register_as"], data, tags)
        outputs = {"model_name": model.name, "model_version": model.version, "model_uri": model.uri}
    return metrics, outputs


PIPELINES: dict[str, Callable[[SandboxPlatform, dict[str, Any]], Result]] = {
    "evaluate-model": evaluate,
    "retrain-model": retrain,
}


def precision_recall(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    true_positive = float(((predicted == 1) & (labels == 1)).sum())
    precision = true_positive / max(float((predicted == 1).sum()), 1.0)
    recall = true_positive / max(float((labels == 1).sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    import numpy as np

    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def latency_p95_ms(session: Any, features: np.ndarray) -> float:
    """95th percentile of single-row scoring latency, as an online endpoint would see it."""
    timings = []
    for row in features[:LATENCY_SAMPLES]:
        start = time.perf_counter()
        scoring.predict(session, row[None, :])
        timings.append((time.perf_counter() - start) * 1000)
    return float(percentile(sorted(timings), 0.95) or 0.0)
