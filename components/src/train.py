"""The model_train component: fit a classifier on a labelled table, write it as ONNX, log to MLflow.

    python train.py --training-data <folder of tables> --model <output folder>

Writes `<model>/model.onnx` (a logistic regression with outputs `label` and
`probabilities`, the feature column names in its metadata `feature_names`) and logs
rows and train_accuracy to the step's MLflow run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tables import LABEL, features_and_labels, read_table


def train(training_data: str, output: str) -> dict[str, float]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    table = read_table(training_data)
    names = [column for column in table.columns if column != LABEL]
    features, labels = features_and_labels(table, names)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    onnx = to_onnx(model, features[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    entry = onnx.metadata_props.add()
    entry.key, entry.value = "feature_names", json.dumps(names)
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx.SerializeToString())
    return {"rows": float(len(labels)), "train_accuracy": float(np.mean(model.predict(features) == labels))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training-data", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    metrics = train(args.training_data, args.model)
    import mlflow

    mlflow.log_metrics(metrics)
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
