"""azure-ai-ml's own e2e tests of models, code and environments, re-expressed against the local service.

Each test names the SDK test it comes from (under `Azure/azure-sdk-for-python`
`sdk/ml/azure-ai-ml/tests/`): `model/e2etests/test_model.py`, `code_asset/e2etests/test_code.py`,
`environment/e2etests/test_environment.py`. The SDK's test configs (YAML files) are built here as
the entities they load to. Waits the SDK tests make for Azure's list index (`sleep(30)` when live)
are not needed: the local service lists what it holds.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import BuildContext, Environment, Model
from azure.ai.ml.entities._assets import Code
from azure.core.exceptions import ResourceNotFoundError
from azure.core.paging import ItemPaged

from devhost.localaml import LocalAzureMLStack, quiet_uploads
from tests.fidelity.sdk import randstr, sdk_client, sdk_stack

LONG_URI = re.compile(r"^azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/datastores/[^/]+/paths/",
                      re.IGNORECASE)  # azure-ai-ml LONG_URI_REGEX_FORMAT, as test_crud_file matches it
CONDA = "name: test\nchannels: [conda-forge]\ndependencies: [python=3.10, pip, {pip: [scikit-learn]}]\n"
IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzureMLStack]:
    yield from sdk_stack(tmp_path_factory.mktemp("sdk-assets"))


@pytest.fixture(scope="module")
def client(local: LocalAzureMLStack) -> Iterator[MLClient]:
    with quiet_uploads():
        yield sdk_client(local)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_text("hello world")
    return path


@pytest.fixture
def mlflow_model(tmp_path: Path) -> Path:
    """An MLflow model folder, as `tests/test_configs/model/lightgbm_mlflow_model` is."""
    folder = tmp_path / "lightgbm_mlflow_model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.lightgbm\n")
    (folder / "model.lgb").write_text("tree")
    return folder


# -- model/e2etests/test_model.py ---------------------------------------------------------------


def test_model_crud_file(client: MLClient, mlflow_model: Path, model_file: Path) -> None:
    """test_model.py::TestModel::test_crud_file: create (version 3), a changed path refused, get, list."""
    name = randstr("model")
    model = client.models.create_or_update(Model(name=name, version="3", path=str(mlflow_model),
                                                 type="mlflow_model", description="this is my test model"))
    assert (model.name, model.version, model.description, model.type) == (name, "3", "this is my test model",
                                                                          "mlflow_model")
    assert LONG_URI.match(str(model.path)), model.path

    with pytest.raises(Exception, match=r"data uri cannot be changed|asset path"), patch(
            "azure.ai.ml._artifacts._artifact_utilities.get_object_hash", return_value="DIFFERENT_HASH"):
        client.models.create_or_update(Model(name=name, version="3", path=str(model_file)))

    got = client.models.get(name, "3")
    assert (got.name, got.version, got.description) == (name, "3", "this is my test model")
    listed = client.models.list(name=name)
    assert isinstance(listed, ItemPaged)
    assert isinstance(next(iter(listed), None), Model)


def test_model_create_autoincrement(client: MLClient, model_file: Path) -> None:
    """test_model.py::TestModel::test_create_autoincrement: no version given -> "1", then "2".

    The SDK test creates one entity twice; azure-ai-ml 1.35 writes the version it chose into the entity it is
    given (`model.version = _get_next_version_from_container(...)`), so a second call with that entity asks for
    version "1" again. Each call here gets the entity fresh, as `load_model` gives it."""
    name = randstr("model")
    model = Model(name=name, path=str(model_file))
    assert model.version is None and model._auto_increment_version

    created = client.models.create_or_update(model)
    assert (created.version, created.type, created._auto_increment_version) == ("1", "custom_model", False)
    following = client.models.create_or_update(Model(name=name, path=str(model_file)))
    assert (following.version, following.type, following._auto_increment_version) == ("2", "custom_model", False)


def test_model_list_no_name(client: MLClient, model_file: Path) -> None:
    """test_model.py::TestModel::test_list_no_name: the workspace's models, as Model entities."""
    client.models.create_or_update(Model(name=randstr("model"), version="1", path=str(model_file)))
    assert isinstance(next(iter(client.models.list()), None), Model)


def test_model_get_latest_label(client: MLClient, model_file: Path) -> None:
    """test_model.py::TestModel::test_models_get_latest_label: `latest` is the last version created."""
    name = randstr("model")
    for version in ("1", "2", "3", "4"):
        client.models.create_or_update(Model(name=name, version=version, path=str(model_file)))
        assert client.models.get(name, label="latest").version == version


def test_model_archive_restore_version(client: MLClient, model_file: Path) -> None:
    """test_model.py::TestModel::test_model_archive_restore_version: an archived version leaves the active list."""
    name = randstr("model")
    for version in ("1", "2"):
        client.models.create_or_update(Model(name=name, version=version, path=str(model_file)))

    def active() -> list[str]:
        return [m.version for m in client.models.list(name=name, list_view_type="ActiveOnly")]

    assert "1" in active()
    client.models.archive(name=name, version="1")
    assert "1" not in active()
    client.models.restore(name=name, version="1")
    assert "1" in active()


def test_model_archive_restore_container(client: MLClient, model_file: Path) -> None:
    """test_model.py::TestModel::test_model_archive_restore_container: an archived model leaves the model list."""
    name = randstr("model")
    client.models.create_or_update(Model(name=name, version="1", path=str(model_file)))

    def active() -> list[str]:
        return [m.name for m in client.models.list(list_view_type="ActiveOnly")]

    assert name in active()
    client.models.archive(name=name)
    assert name not in active()
    client.models.restore(name=name)
    assert name in active()


# -- code_asset/e2etests/test_code.py -------------------------------------------------------------


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    path = tmp_path / "code.txt"
    path.write_text("hello world")
    return path


def test_code_create_and_get(client: MLClient, code_file: Path) -> None:
    """test_code.py::TestCode::test_create_and_get: the created and the read code version share one ARM id."""
    created = client._code.create_or_update(Code(name=randstr("code"), version="2", path=str(code_file)))
    got = client._code.get(created.name, created.version)
    scope = client._operation_scope
    arm_id = (f"/subscriptions/{scope.subscription_id}/resourceGroups/{scope.resource_group_name}/providers/"
              f"Microsoft.MachineLearningServices/workspaces/{scope.workspace_name}/codes/{created.name}/versions/2")
    assert created.id == got.id == arm_id


def test_code_asset_path_update(client: MLClient, code_file: Path) -> None:
    """test_code.py::TestCode::test_asset_path_update: the same name and version with other content is refused.

    The SDK test patches `get_object_hash`; azure-ai-ml 1.35 looks the version up by a hash of its own
    (`_get_snapshot_path_info`), so here the content itself changes, which is what the patch stands for."""
    code = Code(name=randstr("code"), version="1", path=str(code_file))
    client._code.create_or_update(code)

    code_file.write_text(f"other content {uuid.uuid4()}")
    code.path = str(code_file)  # the SDK wrote the uploaded URI into the entity
    with pytest.raises(Exception, match="existing asset's data uri cannot be changed"):
        client._code.create_or_update(code)


def test_code_same_content_again_is_the_same_version(client: MLClient, code_file: Path) -> None:
    """test_code.py::TestCode::test_asset_path_update, its first half: the same content again is no change (the
    SDK finds the version by its content hash, `codes/<name>/versions?hash=`, and reads it back)."""
    code = Code(name=randstr("code"), version="1", path=str(code_file))
    first = client._code.create_or_update(code)
    again = client._code.create_or_update(Code(name=code.name, version="1", path=str(code_file)))
    assert (again.id, again.path) == (first.id, first.path)


# -- environment/e2etests/test_environment.py ---------------------------------------------------------


def _environment_id(client: MLClient, name: str | None, version: str) -> str:
    scope = client._operation_scope
    return (f"/subscriptions/{scope.subscription_id}/resourceGroups/{scope.resource_group_name}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{scope.workspace_name}/environments/{name}/versions/"
            f"{version}")


def test_environment_create_conda(client: MLClient, tmp_path: Path) -> None:
    """test_environment.py::TestEnvironment::test_environment_create_conda (conda file on disk)."""
    conda = tmp_path / "environment.yml"
    conda.write_text(CONDA)
    env = Environment(name=randstr("env"), version="1", image=IMAGE, conda_file=str(conda),
                      description="conda environment")
    created = client._environments.create_or_update(env)
    assert created.conda_file
    assert created.id == _environment_id(client, env.name, "1")
    dumped = created._to_dict()
    assert dumped["id"] == "azureml:" + created.id
    assert dumped["conda_file"] and dumped["description"]


def test_environment_create_conda_inline(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_environment_create_conda_inline (conda given as a dict)."""
    env = Environment(name=randstr("env"), version="1", image=IMAGE, description="inline conda",
                      conda_file={"name": "test", "dependencies": ["python=3.10"]})
    created = client._environments.create_or_update(env)
    assert created.conda_file == {"name": "test", "dependencies": ["python=3.10"]}
    assert created.id == _environment_id(client, env.name, "1")


def test_environment_create_or_update_docker(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_environment_create_or_update_docker (an image only)."""
    env = Environment(name=randstr("env"), version="1", image=IMAGE)
    created = client._environments.create_or_update(env)
    assert created.image == IMAGE
    assert created.id == _environment_id(client, env.name, "1")
    assert created._to_dict()["image"] == IMAGE


def test_environment_create_or_update_docker_context(client: MLClient, tmp_path: Path) -> None:
    """test_environment.py::TestEnvironment::test_environment_create_or_update_docker_context: a build context is
    uploaded; created again from the uploaded context's URI, it is the same version."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {IMAGE}\n")
    env = Environment(name=randstr("env"), version="1", build=BuildContext(path=str(context)))
    created = client._environments.create_or_update(env)
    assert created.build and created.build.path and created.build.dockerfile_path
    assert created.id == _environment_id(client, env.name, "1")

    again = Environment(name=env.name, version="1",
                        build=BuildContext(path=created.build.path, dockerfile_path=created.build.dockerfile_path))
    from_uri = client._environments.create_or_update(again)
    assert from_uri.id == created.id
    assert (from_uri.build.path, from_uri.build.dockerfile_path) == (created.build.path, created.build.dockerfile_path)


def test_environment_create_or_update_docker_context_and_image(client: MLClient, tmp_path: Path) -> None:
    """test_environment.py::TestEnvironment::test_environment_create_or_update_docker_context_and_image: both is
    refused (by the SDK, before any request)."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {IMAGE}\n")
    env = Environment(name=randstr("env"), version="1", build=BuildContext(path=str(context)))
    env.image = "blah"
    with pytest.raises(Exception, match="Docker image or Dockerfile should be provided not both"):
        client._environments.create_or_update(env)


def test_environment_create_autoincrement(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_create_autoincrement, as azure-ai-ml 1.35 does it: the first is
    "1"; the same again updates the latest version (`_try_update_latest_version`); a changed image is refused on
    the latest version (409), so the SDK creates the next one, "2" (azure-sdk-for-python#38590, "Env dedup")."""
    name, other_image = randstr("env"), IMAGE.replace("latest", "20240101")
    env = Environment(name=name, image=IMAGE, description="first")
    assert env.version is None and env._auto_increment_version

    created = client.environments.create_or_update(env)
    assert (created.version, created._auto_increment_version) == ("1", False)
    # Fresh entities, as `load_environment` gives them: the SDK writes the version it chose into the one it gets.
    same = client.environments.create_or_update(Environment(name=name, image=IMAGE, description="changed"))
    assert (same.version, same.description) == ("1", "changed")
    following = client.environments.create_or_update(Environment(name=name, image=other_image))
    assert (following.version, following.image, following._auto_increment_version) == ("2", other_image, False)


def test_environment_version_changed_is_refused(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_create_autoincrement, the refusal it relies on: an environment
    version's image cannot change (409; wording of Azure/azure-cli-extensions#5440)."""
    name = randstr("env")
    client.environments.create_or_update(Environment(name=name, version="1", image=IMAGE))
    with pytest.raises(Exception, match="already registered and cannot be changed"):
        client.environments.create_or_update(Environment(name=name, version="1", image=IMAGE + "-other"))


def test_environment_list(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_environment_list."""
    client.environments.create_or_update(Environment(name=randstr("env"), version="1", image=IMAGE))
    listed = client._environments.list()
    assert isinstance(listed, ItemPaged)
    assert list(listed)


def test_environment_get(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_environment_get (a workspace's own environment here, not the
    curated AzureML-sklearn one the SDK test reads); a missing one is ResourceNotFoundError."""
    name = randstr("env")
    client.environments.create_or_update(Environment(name=name, version="1", image=IMAGE))
    assert client._environments.get(name=name, version="1").id == _environment_id(client, name, "1")
    with pytest.raises(ResourceNotFoundError):
        client._environments.get(name=name, version="9")


def test_environment_archive_restore_version(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_environment_archive_restore_version."""
    name = randstr("env")
    for version in ("1", "2"):
        client.environments.create_or_update(Environment(name=name, version=version, image=IMAGE))

    def active() -> list[str]:
        return [e.version for e in client.environments.list(name=name, list_view_type="ActiveOnly")]

    assert "1" in active()
    client.environments.archive(name=name, version="1")
    assert "1" not in active()
    client.environments.restore(name=name, version="1")
    assert "1" in active()


def test_environment_get_latest_label(client: MLClient) -> None:
    """test_environment.py::TestEnvironment::test_environment_get_latest_label: versions foo, bar, baz, foobar."""
    name = randstr("env")
    for version in ("foo", "bar", "baz", "foobar"):
        created = client.environments.create_or_update(Environment(name=name, version=version, image=IMAGE))
        assert (created.name, created.version) == (name, version)
        assert client.environments.get(name, label="latest").version == version
