"""Sample data and ONNX models for the local stack and tests, made in code: nothing is downloaded.

A binary classification problem with a fixed true rule (from the old sandbox's samples), so
a model trained on one sample generalises to another (`good_model`), while a model trained
on shuffled labels has no skill (`bad_model`). `seed_data` writes the labelled tables the
shipped pipelines read by default (`test-data/`, `training-data/` of the workspace's
default datastore). scikit-learn and skl2onnx are development dependencies.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

from localaml.datastores import workspace_container

if TYPE_CHECKING:
    import numpy as np

    from localaml.service import LocalAzureML

FEATURES = 8
FEATURE_NAMES = [f"f{i}" for i in range(FEATURES)]
RULE_SEED = 7
TEST_DATA = "test-data/"
TRAINING_DATA = "training-data/"
BROKEN_MODEL = b"this is not an ONNX model"


def make_data(rows: int = 2000, seed: int = 0, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels): label 1 where a fixed linear rule plus noise is positive."""
    import numpy as np

    weights = np.random.default_rng(RULE_SEED).normal(size=FEATURES)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x @ weights + rng.normal(scale=noise, size=rows) > 0).astype(np.int64)
    return x, y


def table(features: np.ndarray, labels: np.ndarray) -> bytes:
    """A labelled table as Parquet: columns f0..f7 and `label`, as the components read it."""
    import pandas as pd

    frame = pd.DataFrame(features, columns=FEATURE_NAMES)
    frame["label"] = labels
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def train_onnx(features: np.ndarray, labels: np.ndarray) -> bytes:
    """A logistic regression as ONNX (outputs `label` and `probabilities`, metadata `feature_names`)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=500).fit(features, labels)
    onnx = to_onnx(model, features[:1], options={id(model): {"zipmap": False}}, target_opset=17)
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


def seed_data(service: LocalAzureML, workspace: str) -> dict[str, str]:
    """Write the test and training tables into the workspace's default datastore; their datastore URIs."""
    if service.storage is None:
        raise RuntimeError("the local service has no storage account to write sample data to")
    container = service.storage.get_container_client(workspace_container(workspace))
    if not container.exists():
        container.create_container()
    container.upload_blob(f"{TEST_DATA}holdout.parquet", table(*make_data(rows=1000, seed=3)), overwrite=True)
    container.upload_blob(f"{TRAINING_DATA}train.parquet", table(*make_data(rows=2000, seed=4)), overwrite=True)
    return {
        "test_data": f"azureml://datastores/workspaceblobstore/paths/{TEST_DATA}",
        "training_data": f"azureml://datastores/workspaceblobstore/paths/{TRAINING_DATA}",
    }
