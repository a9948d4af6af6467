"""Small sample data and ONNX models, made in code: nothing is downloaded.

A binary classification problem with a fixed true rule, so that a model trained on one
sample generalises to another (`good_model`), while a model trained on shuffled labels
has no skill (`bad_model`). scikit-learn and skl2onnx are development dependencies,
imported only when a model is trained.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

FEATURES = 8
FEATURE_NAMES = [f"f{i}" for i in range(FEATURES)]
RULE_SEED = 7


def make_data(rows: int = 2000, seed: int = 0, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels): label 1 where a fixed linear rule plus noise is positive."""
    import numpy as np

    weights = np.random.default_rng(RULE_SEED).normal(size=FEATURES)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x @ weights + rng.normal(scale=noise, size=rows) > 0).astype(np.int64)
    return x, y


def train_onnx(features: np.ndarray, labels: np.ndarray) -> bytes:
    """Fit a logistic regression and convert it to ONNX (outputs `label` and `probabilities`)."""
    try:
        from skl2onnx import to_onnx
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:
        raise RuntimeError(
            "training sample models needs scikit-learn and skl2onnx (requirements-dev.txt)"
        ) from error

    model = LogisticRegression(max_iter=500).fit(features, labels)
    onnx = to_onnx(model, features[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    # Batch scoring reads the feature columns of a file from this metadata.
    entry = onnx.metadata_props.add()
    entry.key, entry.value = "feature_names", json.dumps(FEATURE_NAMES)
    return onnx.SerializeToString()


def good_model(seed: int = 1) -> bytes:
    return train_onnx(*make_data(seed=seed))


def bad_model(seed: int = 2) -> bytes:
    """A model that learned nothing: trained on labels shuffled away from their rows."""
    import numpy as np

    features, labels = make_data(seed=seed)
    return train_onnx(features, np.random.default_rng(seed).permutation(labels))


BROKEN_MODEL = b"this is not an ONNX model"
