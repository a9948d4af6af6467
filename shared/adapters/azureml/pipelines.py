"""The test pipelines kept in the repo (`pipelines/<name>.yml`), made into jobs to submit.

A pipeline's YAML is reviewed like code; per submission the app only sets declared
inputs (the model under test, ...), the job's name and its tags. An input the YAML does
not declare is refused, naming the file, so a typo cannot silently test the wrong thing.

A declared pipeline output can be given the name (and version) of the asset Azure ML
registers it as when the job completes, with the key `outputs.<output>.name` (or
`.version`): the docs' "Register output as named asset" (how-to-manage-inputs-outputs-pipeline),
so one retraining pipeline registers each rule's model under the rule's name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PIPELINES = Path(__file__).resolve().parents[3] / "pipelines"
PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
OUTPUT_KEY = re.compile(r"^outputs\.(?P<output>[A-Za-z_][A-Za-z0-9_]{0,254})\.(?P<field>name|version)$")


def pipeline_path(name: str, directory: Path | None = None) -> Path:
    """The YAML file of pipeline `name`; the name is checked so it cannot leave the folder."""
    if not PIPELINE_NAME.match(name):
        raise ValueError(f"pipeline {name!r} must be a file name in pipelines/ matching {PIPELINE_NAME.pattern}")
    path = (directory or PIPELINES) / f"{name}.yml"
    if not path.is_file():
        raise ValueError(f"pipeline {name!r}: {path} does not exist")
    return path


def overrides(path: Path, inputs: dict[str, str]) -> list[dict[str, str]]:
    """`load_job` params overrides setting `inputs`: the path of an asset input, the value of a literal one,
    the registered name / version of a declared output (`outputs.<output>.name`)."""
    import yaml

    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    declared: dict[str, Any] = document.get("inputs") or {}
    outputs: dict[str, Any] = document.get("outputs") or {}
    result = []
    for name, value in inputs.items():
        output = OUTPUT_KEY.match(name)
        if output:
            if output["output"] not in outputs:
                known = ", ".join(sorted(outputs)) or "none"
                raise ValueError(f"pipeline {path.name} has no output {output['output']!r} (its outputs: {known})")
            result.append({name: value})
            continue
        if not INPUT_NAME.match(name) or name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ValueError(f"pipeline {path.name} has no input {name!r} (its inputs: {known})")
        is_asset = isinstance(declared[name], dict) and "path" in declared[name]
        key = f"inputs.{name}.path" if is_asset else f"inputs.{name}"
        result.append({key: value})
    return result


def pipeline_job(
    name: str, inputs: dict[str, str], *, job_name: str, tags: dict[str, str], directory: Path | None = None
) -> Any:
    """The `PipelineJob` to submit for pipeline `name` with `inputs`, named `job_name`."""
    from azure.ai.ml import load_job

    path = pipeline_path(name, directory)
    job = load_job(path, params_override=overrides(path, inputs))
    job.name = job_name
    job.tags = {**(job.tags or {}), **tags}
    return job
