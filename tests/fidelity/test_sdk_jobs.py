"""azure-ai-ml's own e2e tests of command jobs, re-expressed against the local service.

Each test names the SDK test it comes from in `Azure/azure-sdk-for-python`
`sdk/ml/azure-ai-ml/tests/command_job/e2etests/test_command_job.py` (`TestCommandJob`); the job
YAML files of `tests/test_configs/command_job/` are written here with the local workspace's names
(compute `cpu-cluster`, quick `echo` / `python -c` commands instead of `pip freeze`). Jobs really
run in the local service (`localaml/runner.py`); the SDK tests' `check_tid_in_url` is asserted
here too (the SDK checks it live only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from azure.ai.ml import MLClient, load_job
from azure.ai.ml.entities import Data, Environment
from azure.ai.ml.operations._run_history_constants import JobStatus, RunHistoryConstants
from azure.core.polling import LROPoller

from devhost.localaml import LocalAzureMLStack, quiet_uploads
from devhost.waiting import wait_until
from localaml.datastores import workspace_container
from tests.fidelity.sdk import randstr, sdk_client, sdk_stack

ENVIRONMENT = "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu"
IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"
SLOW = "python -c \"import time; time.sleep(120)\""  # a job still running when it is canceled


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzureMLStack]:
    yield from sdk_stack(tmp_path_factory.mktemp("sdk-jobs"))


@pytest.fixture(scope="module")
def client(local: LocalAzureMLStack) -> Iterator[MLClient]:
    """dev, with the curated environment the SDK's job configs name and the blob `python/data.csv` they read."""
    with quiet_uploads():
        ml = sdk_client(local)
        ml.environments.create_or_update(Environment(name=ENVIRONMENT, version="33", image=IMAGE))
        assert local.service.storage is not None
        container = local.service.storage.get_container_client(workspace_container("dev"))
        if not container.exists():
            container.create_container()
        container.upload_blob("python/data.csv", b"a,b\n1,2\n", overwrite=True)
        yield ml


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """The SDK's test_configs layout: command_job/ beside data/ and python/."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample1.csv").write_text("a,b\n1,2\n")
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "sample1.csv").write_text("a,b\n1,2\n")
    (tmp_path / "python" / "simple_train.py").write_text("print('training')\n")
    (tmp_path / "command_job").mkdir()
    return tmp_path / "command_job"


def _yaml(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _studio_has_tid(job: object) -> bool:
    """check_tid_in_url: the Studio link carries the tenant (`&tid=`), as the SDK appends it."""
    services = getattr(job, "services", None) or {}
    studio = services.get("Studio")
    return studio is not None and "tid=" in str(studio.endpoint) and getattr(job, "studio_url", None) == studio.endpoint


def _ended(client: MLClient, name: str) -> str:
    """The job's status once it has ended (the job really runs: a wall-clock wait, as the SDK's wait_until_done)."""

    def ended() -> str | None:
        status = client.jobs.get(name).status
        return status if status in RunHistoryConstants.TERMINAL_STATUSES else None

    return cast(str, wait_until(ended, timeout=60, what=f"job {name} to end"))


COMMAND_JOB = f"""command: echo ${{{{inputs.hello_input}}}}
environment: azureml:{ENVIRONMENT}:33
name: "test1"
display_name: "test_display_name"
compute: "azureml:cpu-cluster"
experiment_name: mfe-test1
identity:
  type: AMLToken
tags:
  empty_tag:
properties:
  empty_property:
inputs:
  hello_input:
    type: uri_folder
    path: ../data
"""


def test_command_job(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job: created in progress, read back the same; a local
    uri_folder input is uploaded and ends in `/`."""
    name = randstr("job")
    job = load_job(_yaml(configs, "command_job_test.yml", COMMAND_JOB), params_override=[{"name": name}])
    created = client.jobs.create_or_update(job=job)

    assert created.name == name
    assert created.status in RunHistoryConstants.IN_PROGRESS_STATUSES
    # The SDK test expects the short form with its `enable_environment_id_arm_expansion` fixture on; without it
    # azure-ai-ml 1.35 answers the `azureml:` form, as for the job read back.
    assert created.environment.removeprefix("azureml:") == f"{ENVIRONMENT}:33"
    assert created.compute == "cpu-cluster"
    assert _studio_has_tid(created)
    hello: Any = job.inputs["hello_input"]  # type: ignore[attr-defined]  # a Command builder: it has inputs
    assert hello.type == "uri_folder"
    assert str(hello.path).endswith("/")

    got = client.jobs.get(name)
    assert got.name == created.name
    assert got.identity.type == created.identity.type
    assert got.environment == f"azureml:{ENVIRONMENT}:33"
    assert got.compute == "cpu-cluster"
    assert _studio_has_tid(got)


def test_command_job_with_dataset(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_with_dataset: a local folder as input."""
    text = COMMAND_JOB.replace("hello_input", "testdataset").replace("    type: uri_folder\n", "    mode: ro_mount\n")
    name = randstr("job")
    created = client.jobs.create_or_update(load_job(_yaml(configs, "local_dataset.yml", text),
                                                    params_override=[{"name": name}]))
    assert created.status in RunHistoryConstants.IN_PROGRESS_STATUSES
    assert created.compute == "cpu-cluster"
    got = client.jobs.get(name)
    assert (got.name, got.identity.type, got.environment) == (name, created.identity.type, f"azureml:{ENVIRONMENT}:33")


def test_command_job_with_dataset_short_uri(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_with_dataset_short_uri: a datastore short URI as input;
    the job runs to the end on it."""
    text = (COMMAND_JOB.replace("hello_input", "testdataset")
            .replace("    type: uri_folder\n    path: ../data\n",
                     "    mode: ro_mount\n    type: uri_file\n"
                     "    path: azureml://datastores/workspaceblobstore/paths/python/data.csv\n")
            .replace("echo ", "cat "))
    name = randstr("job")
    created = client.jobs.create_or_update(load_job(_yaml(configs, "dataset.yml", text),
                                                    params_override=[{"name": name}]))
    assert created.status in RunHistoryConstants.IN_PROGRESS_STATUSES
    assert client.jobs.get(name).environment == f"azureml:{ENVIRONMENT}:33"
    assert _ended(client, name) == JobStatus.COMPLETED


SIMPLE_TRAIN = f"""command: {SLOW}
code: "../python/"
environment:
  conda_file: ./simple_train_conda.yml
  image: {IMAGE}
name: "test1"
compute: "azureml:cpu-cluster"
experiment_name: mfe-test1
"""


def _simple_train(configs: Path) -> Path:
    (configs / "simple_train_conda.yml").write_text("name: train\ndependencies: [python=3.10]\n")
    return _yaml(configs, "simple_train_test.yml", SIMPLE_TRAIN)


def test_command_job_cancel(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_cancel: `begin_cancel` is a poller whose result is
    None; the job is then CancelRequested or Canceled (and here, once its step has stopped, Canceled)."""
    name = randstr("job")
    created = client.jobs.create_or_update(load_job(_simple_train(configs), params_override=[{"name": name}]))
    assert created.name == name

    poller = client.jobs.begin_cancel(name)
    assert isinstance(poller, LROPoller)
    assert poller.result() is None
    assert client.jobs.get(name).status in (JobStatus.CANCEL_REQUESTED, JobStatus.CANCELED)
    assert _ended(client, name) == JobStatus.CANCELED


def test_command_job_cancel_of_an_ended_job(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_cancel, on a job that has ended: the cancel's poller
    ends and the job keeps its outcome."""
    name = randstr("job")
    text = SIMPLE_TRAIN.replace(SLOW, "echo done")
    (configs / "simple_train_conda.yml").write_text("name: train\ndependencies: [python=3.10]\n")
    client.jobs.create_or_update(load_job(_yaml(configs, "quick.yml", text), params_override=[{"name": name}]))
    assert _ended(client, name) == JobStatus.COMPLETED

    assert client.jobs.begin_cancel(name).result() is None
    assert client.jobs.get(name).status == JobStatus.COMPLETED


def test_command_job_dependency_label_resolution(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_dependency_label_resolution: `name@latest` of an
    environment and of a data asset resolve to their last versions; the job is then canceled."""
    environment, data = randstr("environment"), randstr("data")
    for version in ("foo", "bar"):
        client.environments.create_or_update(Environment(name=environment, version=version, image=IMAGE,
                                                         conda_file={"dependencies": ["python=3.10"]}))
    for version in ("foobar", "foo"):
        client.data.create_or_update(Data(name=data, version=version, type="uri_file",
                                          path=str(configs.parent / "data" / "sample1.csv")))
    name = randstr("job")
    job = load_job(_simple_train(configs), params_override=[
        {"name": name}, {"environment": f"azureml:{environment}@latest"},
        {"inputs": {"testdata": {"path": f"azureml:{data}@latest"}}},
    ])
    resource = client.jobs.create_or_update(job=job)
    assert client.jobs.begin_cancel(name).result() is None

    assert resource.environment == f"{environment}:bar"
    assert resource.inputs.testdata.path == f"{data}:foo"


def test_command_job_archive_restore(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_archive_restore: an archived job leaves the active
    list and comes back when restored."""
    name = randstr("job")
    client.jobs.create_or_update(load_job(_yaml(configs, "command_job_test.yml", COMMAND_JOB),
                                          params_override=[{"name": name}]))

    def active() -> list[str]:
        return [job.name for job in client.jobs.list(list_view_type="ActiveOnly")]

    assert name in active()
    client.jobs.archive(name=name)
    assert name not in active()
    client.jobs.restore(name=name)
    assert name in active()


def test_command_job_invalid_datastore(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_invalid_datastore: an input on a datastore the
    workspace does not have is refused, "The datastore non-existent-ds could not be found in this workspace".

    The SDK's config gives the input as a blob URL of container `non-existent-ds`; the datastore URI form is used
    here, which names the datastore itself."""
    text = f"""command: echo ${{{{inputs.test1}}}}
type: command
environment: azureml:{ENVIRONMENT}:33
name: "test1"
compute: "azureml:cpu-cluster"
experiment_name: mfe-test1
properties:
  test_property: test_value
inputs:
  test1:
    mode: ro_mount
    type: uri_file
    path: azureml://datastores/non-existent-ds/paths/testdata/data.csv
"""
    job = load_job(_yaml(configs, "incorrect_datastore.yml", text), params_override=[{"name": randstr("job")}])
    with pytest.raises(Exception, match="The datastore non-existent-ds could not be found in this workspace"):
        client.jobs.create_or_update(job=job)


def test_command_job_with_inputs_with_datastore_param(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_with_inputs_with_datastore_param: a relative local
    input uploaded to the datastore the job names; the job runs on it to the end."""
    text = f"""command: cat ${{{{inputs.test1}}}}
environment: azureml:{ENVIRONMENT}:33
name: "test1"
compute: "azureml:cpu-cluster"
experiment_name: mfe-test1
properties:
  _azureml.ComputeTargetType: amlcompute
inputs:
  "test1":
    mode: ro_mount
    type: uri_file
    path: "../python/sample1.csv"
"""
    name = randstr("job")
    job = load_job(_yaml(configs, "relative_inputs.yml", text),
                   params_override=[{"name": name}, {"inputs.test1.datastore": "workspaceblobstore"}])
    client.jobs.create_or_update(job=job)
    assert _ended(client, name) == JobStatus.COMPLETED


def test_command_job_register_output(client: MLClient, configs: Path) -> None:
    """test_command_job.py::TestCommandJob::test_command_job_register_output: outputs with a name keep it."""
    text = f"""command: echo "inputs dont need to be used in command"
environment: azureml:{ENVIRONMENT}:33
name: "test1"
compute: "azureml:cpu-cluster"
experiment_name: mfe-test1
properties:
  _azureml.ComputeTargetType: amlcompute
outputs:
  test1:
  test2:
    mode: upload
    name: test2_output
    version: 2
  test3:
    mode: rw_mount
    name: test3_output
    version: 3
"""
    job = client.jobs.create_or_update(load_job(_yaml(configs, "register_output.yml", text),
                                                params_override=[{"name": randstr("job")}]))
    assert job.outputs.test2.name == "test2_output"
    assert job.outputs.test3.name == "test3_output"
