"""The repo's pipelines and what the app passes them: declared inputs only, named outputs per rule.

A pipeline output with a `name` is registered by Azure ML as that asset when the job completes
(docs: "Manage inputs and outputs of component and pipeline", "Register output as named asset").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.adapters.azureml.pipelines import overrides, pipeline_job, pipeline_path
from shared.adapters.storage.stores import Stores
from shared.bootstrap import Services
from shared.domain.policy import load_policy
from shared.domain.ports import Job, JobStatus, ModelVersion
from shared.reactor import lifecycle
from shared.settings import Settings
from tests.unit.test_isolation_fakes import FakeState

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(str(ROOT / "policy/policy.yaml"))


def declared(name: str, section: str = "inputs") -> set[str]:
    return set((yaml.safe_load(pipeline_path(name).read_text()) or {}).get(section) or {})


def test_the_pipelines_declare_exactly_what_the_app_sets() -> None:
    assert declared("model-test") == {"model", "test_data"}
    assert declared("retrain") == {"training_data"}
    assert declared("retrain", "outputs") == {"model"}


@pytest.mark.parametrize("rule", POLICY.rules, ids=lambda rule: rule.name)
def test_the_shipped_policy_passes_only_inputs_its_pipelines_declare(rule: Any) -> None:
    """The policy used to name sandbox-only pipelines with inputs model-test.yml does not declare."""
    test_inputs = {**rule.test.inputs, "model": "azureml:credit-risk:1"}
    assert overrides(pipeline_path(rule.test.pipeline), test_inputs)
    if rule.drift is not None and rule.drift.pipeline:
        assert overrides(pipeline_path(rule.drift.pipeline), dict(rule.drift.inputs))


def test_an_output_name_override_names_the_registered_model() -> None:
    job = pipeline_job("retrain", {"outputs.model.name": "credit-risk"}, job_name="rt-1", tags={})

    body = job._to_rest_object().as_dict()["properties"]

    assert body["outputs"]["model"] == {"assetName": "credit-risk", "jobOutputType": "custom_model"}
    assert body["jobs"]["train"]["outputs"]["model"]["value"] == "${{parent.outputs.model}}"


@pytest.mark.parametrize(
    ("pipeline", "inputs", "message"),
    [
        ("model-test", {"model_uri": "azureml:x:1"}, "pipeline model-test.yml has no input 'model_uri'"),
        ("model-test", {"outputs.model.name": "x"}, "model-test.yml has no output 'model' (its outputs: none)"),
        ("retrain", {"outputs.model.path": "x"}, "pipeline retrain.yml has no input 'outputs.model.path'"),
        ("retrain", {"dataset": "x"}, "pipeline retrain.yml has no input 'dataset' (its inputs: training_data)"),
    ],
)
def test_what_a_pipeline_does_not_declare_is_refused(pipeline: str, inputs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        overrides(pipeline_path(pipeline), inputs)
    assert message in str(refused.value)


@dataclass
class Recorder:
    """Just enough platform for start_testing."""

    submitted: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    def submit_job(self, workspace: str, job_name: str, pipeline: str, inputs: dict[str, str],
                   tags: dict[str, str]) -> Job:
        self.submitted.append((workspace, job_name, pipeline, inputs))
        return Job(workspace=workspace, name=job_name, status=JobStatus.QUEUED)

    def set_model_tags(self, *args: Any) -> None:
        pass


def test_start_testing_submits_the_model_as_the_test_pipelines_model_input() -> None:
    recorder = Recorder()
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    services = Services(settings=settings, state=Stores(FakeState()), work_queue=None,  # type: ignore[arg-type]
                        _platform=recorder, _policy=POLICY)  # type: ignore[arg-type]
    rule = POLICY.rules[0]
    model = ModelVersion(location="dev", name="credit-risk", version="7", uri="azureml:credit-risk:7")

    lifecycle.start_testing(services, rule, model, cause="event-1")

    [(workspace, _, pipeline, inputs)] = recorder.submitted
    assert (workspace, pipeline) == ("dev", "model-test")
    assert inputs == {**rule.test.inputs, "model": "azureml:credit-risk:7"}
    assert overrides(pipeline_path(pipeline), inputs)
