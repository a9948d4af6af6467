"""Register the repo's Azure ML assets in a workspace, with one command:

    python -m tools.register_assets --subscription <id> --resource-group <rg> --workspace <name>

(DefaultAzureCredential; `register(ml_client)` does the same with a given MLClient, which is
how the local stack and the tests register them in the local Azure ML service.)

What it registers, each at version 1 (registering again is harmless):

- environment `aml-reactor-components` (components/environment.yml + conda.yml): what the
  components run in;
- components `model_evaluate` and `model_train` (components/<name>/component.yml, code
  components/src): the steps of pipelines/model-test.yml and pipelines/retrain.yml;
- environment `onnx-runtime` (components/onnx_score/environment.yml) and code `onnx-score`
  (components/onnx_score, scoring script `score.py`): what online deployments reference as
  `environment: azureml:onnx-runtime:1` and `code_configuration: {code: azureml:onnx-score:1,
  scoring_script: score.py}`.

Code is uploaded the SDK's way (a code version's `startPendingUpload` SAS URL).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
ENVIRONMENTS = (COMPONENTS / "environment.yml", COMPONENTS / "onnx_score" / "environment.yml")
COMPONENT_FILES = (COMPONENTS / "model_evaluate" / "component.yml", COMPONENTS / "model_train" / "component.yml")
SCORING_CODE = ("onnx-score", "1", COMPONENTS / "onnx_score")


def register(ml_client: Any) -> list[str]:
    """Register the environments, the scoring code and the components; their `name:version`s."""
    from azure.ai.ml import load_component, load_environment
    from azure.ai.ml.entities._assets import Code

    registered = []
    for path in ENVIRONMENTS:
        environment = ml_client.environments.create_or_update(load_environment(source=path))
        registered.append(f"environment {environment.name}:{environment.version}")
    name, version, folder = SCORING_CODE
    # MLClient has no public code operations; its code client is the one every asset upload goes through.
    code = ml_client._code.create_or_update(Code(name=name, version=version, path=str(folder)))
    registered.append(f"code {code.name}:{code.version}")
    for path in COMPONENT_FILES:
        component = ml_client.components.create_or_update(load_component(source=path))
        registered.append(f"component {component.name}:{component.version}")
    return registered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--resource-group", required=True)
    parser.add_argument("--workspace", required=True)
    args = parser.parse_args(argv)
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    client = MLClient(DefaultAzureCredential(), args.subscription, args.resource_group, args.workspace)
    for line in register(client):
        sys.stdout.write(f"registered {line}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
