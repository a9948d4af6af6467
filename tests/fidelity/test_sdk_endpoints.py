"""azure-ai-ml's own e2e tests of online and batch endpoints, re-expressed against the local service.

Each test names the SDK test it comes from under `Azure/azure-sdk-for-python`
`sdk/ml/azure-ai-ml/tests/`: `online_services/e2etests/test_online_endpoint.py`,
`online_services/e2etests/test_online_deployment.py`, `batch_services/e2etests/test_batch_endpoint.py`.
The deployment serves a real ONNX model (`localaml.samples.good_model`) with scoring code and an
environment, as a non-MLflow model must (`localaml/endpoints.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import (
    BatchEndpoint,
    CodeConfiguration,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineEndpoint,
)
from azure.ai.ml.entities._endpoint.online_endpoint import EndpointAuthKeys, EndpointAuthToken
from azure.core.exceptions import ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.core.polling import LROPoller

from devhost.localaml import LocalAzureMLStack, quiet_uploads
from localaml import samples
from tests.fidelity.sdk import randstr, sdk_client, sdk_stack

IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzureMLStack]:
    yield from sdk_stack(tmp_path_factory.mktemp("sdk-endpoints"))


@pytest.fixture(scope="module")
def client(local: LocalAzureMLStack) -> Iterator[MLClient]:
    with quiet_uploads():
        yield sdk_client(local)


@pytest.fixture(scope="module")
def model(client: MLClient, tmp_path_factory: pytest.TempPathFactory) -> Model:
    """tests/test_configs/deployments/model-1, as an ONNX model the local service really loads."""
    folder = tmp_path_factory.mktemp("model-1")
    (folder / "model.onnx").write_bytes(samples.good_model())
    return client.models.create_or_update(Model(name=randstr("model"), version="1", path=str(folder / "model.onnx")))


@pytest.fixture(scope="module")
def scoring_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onlinescoring")
    (folder / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    return folder


def _deployment(endpoint: str, name: str, model: Model, code: Path) -> ManagedOnlineDeployment:
    """tests/test_configs/deployments/online/online_deployment_1.yaml, on the local model."""
    return ManagedOnlineDeployment(
        name=name, endpoint_name=endpoint, model=f"azureml:{model.name}:{model.version}",
        code_configuration=CodeConfiguration(code=str(code), scoring_script="score.py"),
        environment=Environment(image=IMAGE, conda_file={"dependencies": ["python=3.10"]}),
        instance_type="Standard_DS3_v2", instance_count=1,
    )


# -- online_services/e2etests/test_online_endpoint.py -----------------------------------------------


def test_online_endpoint_e2e(client: MLClient) -> None:
    """test_online_endpoint.py::test_online_endpoint_e2e (online_endpoint_create_mir.yml: auth_mode aml_token):
    created through a poller, read back, its token, the endpoints listed, deleted."""
    name = randstr("mir-test")
    poller = client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=name, auth_mode="aml_token"))
    assert isinstance(poller, LROPoller)
    poller.result()
    try:
        got = client.online_endpoints.get(name=name)
        assert got.name == name
        assert isinstance(got, OnlineEndpoint)
        assert got.auth_mode == "aml_token"
        credentials = client.online_endpoints.get_keys(name=name)
        assert isinstance(credentials, EndpointAuthToken)
        assert credentials.access_token
        listed = client.online_endpoints.list()
        assert isinstance(listed, ItemPaged)
        assert name in [endpoint.name for endpoint in listed]
    finally:
        client.online_endpoints.begin_delete(name=name).result()


def test_online_endpoint_e2e_key_regeneration(client: MLClient) -> None:
    """test_online_endpoint.py::test_online_endpoint_e2e, its key branch: a key endpoint's keys; regenerating the
    secondary key changes it and keeps the primary."""
    from azure.ai.ml.constants._endpoint import EndpointKeyType

    name = randstr("mir-test")
    client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=name, auth_mode="key")).result()
    try:
        credentials = client.online_endpoints.get_keys(name=name)
        assert isinstance(credentials, EndpointAuthKeys)
        client.online_endpoints._regenerate_online_keys(name=name,
                                                        key_type=EndpointKeyType.SECONDARY_KEY_TYPE).result()
        updated = client.online_endpoints.get_keys(name=name)
        assert credentials.secondary_key != updated.secondary_key
        assert credentials.primary_key == updated.primary_key
    finally:
        client.online_endpoints.begin_delete(name=name).result()


def test_online_endpoint_get_missing(client: MLClient) -> None:
    """test_online_endpoint.py::test_online_endpoint_e2e, after its `finally`: a deleted endpoint is not found."""
    name = randstr("mir-test")
    client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=name, auth_mode="key")).result()
    client.online_endpoints.begin_delete(name=name).result()
    with pytest.raises(ResourceNotFoundError):
        client.online_endpoints.get(name=name)


# -- online_services/e2etests/test_online_deployment.py ----------------------------------------------


def test_online_deployment(client: MLClient, model: Model, scoring_code: Path, tmp_path: Path) -> None:
    """test_online_deployment.py::TestOnlineDeployment::test_online_deployment: a deployment created right after
    its endpoint, read and listed; all traffic to it; the endpoint invoked."""
    name = randstr("online-ept")
    endpoint = ManagedOnlineEndpoint(name=name, auth_mode="key")
    deployment = _deployment(name, "blue", model, scoring_code)
    client.online_endpoints.begin_create_or_update(endpoint).result()
    try:
        client.online_deployments.begin_create_or_update(deployment).result()
        got = client.online_deployments.get(name=deployment.name, endpoint_name=name)
        assert got.name == deployment.name
        assert len(list(client.online_deployments.list(endpoint_name=name))) > 0

        endpoint.traffic = {deployment.name: 100}
        client.online_endpoints.begin_create_or_update(endpoint).result()
        assert client.online_endpoints.get(name).traffic[deployment.name] == 100
        request = tmp_path / "sample-request.json"
        request.write_text(json.dumps({"inputs": [[0.5] * samples.FEATURES]}))
        answer = client.online_endpoints.invoke(endpoint_name=name, request_file=str(request))
        assert json.loads(answer)
    finally:
        client.online_endpoints.begin_delete(name=name).result()


# -- batch_services/e2etests/test_batch_endpoint.py ---------------------------------------------------


def _create_get_delete_batch(client: MLClient, endpoint: BatchEndpoint) -> None:
    created = client.batch_endpoints.begin_create_or_update(endpoint=endpoint).result()
    assert created is not None
    assert created.name == endpoint.name
    assert client.batch_endpoints.get(name=endpoint.name).name == endpoint.name
    client.batch_endpoints.begin_delete(name=endpoint.name).result()
    with pytest.raises(ResourceNotFoundError):
        client.batch_endpoints.get(name=endpoint.name)


def test_batch_endpoint_create(client: MLClient) -> None:
    """test_batch_endpoint.py::TestBatchEndpoint::test_batch_endpoint_create (batch_endpoint.yaml): created, read,
    deleted, then not found."""
    _create_get_delete_batch(client, BatchEndpoint(name=randstr("batch"), description="this is a batch endpoint",
                                                   tags={"foo": "bar"}))


def test_mlflow_batch_endpoint_create_and_update(client: MLClient) -> None:
    """test_batch_endpoint.py::TestBatchEndpoint::test_mlflow_batch_endpoint_create_and_update
    (batch_endpoint_mlflow.yaml)."""
    _create_get_delete_batch(client, BatchEndpoint(name=randstr("batch"), description="mlflow batch endpoint"))


# -- batch_services/e2etests/test_batch_deployment.py -------------------------------------------------


def test_batch_deployment_dependency_label_resolution(client: MLClient, scoring_code: Path, tmp_path: Path) -> None:
    """test_batch_deployment.py::test_batch_deployment_dependency_label_resolution: a batch deployment naming
    `environment@latest` and `model@latest` is created with their last versions (bar, 2)."""
    from azure.ai.ml._utils._arm_id_utils import AMLVersionedArmId
    from azure.ai.ml.entities import BatchDeployment

    environment = randstr("environment")
    for version in ("foo", "bar"):
        client.environments.create_or_update(Environment(name=environment, version=version, image=IMAGE,
                                                         conda_file={"dependencies": ["python=3.10"]}))
    model = randstr("model")
    weights = tmp_path / "model.pkl"
    weights.write_text("hello world")
    for version in ("1", "2"):
        client.models.create_or_update(Model(name=model, version=version, path=str(weights)))
    name = randstr("batch-ept")
    client.batch_endpoints.begin_create_or_update(BatchEndpoint(name=name))
    client.batch_deployments.begin_create_or_update(BatchDeployment(
        # `load_batch_deployment` strips the YAML's `azureml:` prefix before the SDK resolves the label.
        name=randstr("batch-dpm"), endpoint_name=name, model=f"{model}@latest",
        environment=f"{environment}@latest", compute="cpu-cluster",
        code_configuration=CodeConfiguration(code=str(scoring_code), scoring_script="score.py"),
    ))
    deployments = list(client.batch_deployments.list(endpoint_name=name))
    assert len(deployments) == 1
    found = client.batch_deployments.get(name=deployments[0].name, endpoint_name=name)
    client.batch_endpoints.begin_delete(name=name)

    resolved_environment, resolved_model = AMLVersionedArmId(found.environment), AMLVersionedArmId(found.model)
    assert (resolved_environment.asset_name, resolved_environment.asset_version) == (environment, "bar")
    assert (resolved_model.asset_name, resolved_model.asset_version) == (model, "2")
