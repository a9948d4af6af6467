"""The local Azure ML service's online endpoints and deployments, through the real SDK and the app's adapter.

Each behaviour's public source is named in `localaml/endpoints.py` and again in the test:
the SDK recording `Azure/azure-sdk-assets` `python/sdk/ml/azure-ai-ml/tests/recordings/online_services/
e2etests/test_online_endpoint.pyTestOnlineEndpointtest_online_endpoint_e2e.json` ("the endpoint
recording"), the REST spec `Azure/azure-rest-api-specs` `specification/machinelearningservices/
resource-manager/Microsoft.MachineLearningServices/stable/2024-10-01` ("the REST spec"), and the Azure ML
docs (safe rollout; troubleshooting online endpoints). Models are real ONNX models in the service's own
storage account (an Azurite over TLS), made with scikit-learn + skl2onnx.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests

import localaml
from devhost.azurite import running_azurite
from devhost.waiting import wait_until
from localaml import endpoints
from localaml.datastores import registry_container, workspace_container
from localaml.endpoints import online, provisioning_state
from localaml.server import serving
from localaml.service import RESOURCE_GROUP, SUBSCRIPTION, LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import DeploymentSpec, ModelVersion, PlatformError, TryLater
from tests.contract.conftest import bearer, taking_tokens_of

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from devhost.entra import LocalEntraStack
    from localaml.tls import Certificates
    from shared.adapters.azureml import Cloud

DEV = LocalAzureML.workspace_id("dev")
ENDPOINT = f"{DEV}/onlineEndpoints/churn-ep"
API = {"api-version": "2023-04-01-preview"}
ENVIRONMENT = f"{DEV}/environments/onnx-runtime/versions/1"
CODE = f"{DEV}/codes/onnx-score/versions/1"
CHURN = ModelVersion(location="dev", name="churn", version="3", uri="azureml:churn:3")
ROWS = [[0.1 * i for i in range(8)], [-0.2 * i for i in range(8)]]


@pytest.fixture(scope="module")
def service(certificates: Certificates, entra: LocalEntraStack) -> Iterator[LocalAzureML]:
    """The service with the endpoints feature and its storage account: an Azurite over TLS."""
    from azure.storage.blob import BlobServiceClient

    tls = (str(certificates.cert_file), str(certificates.key_file))
    with running_azurite(tls=tls) as azurite, pytest.MonkeyPatch.context() as patch:
        if endpoints.install not in localaml.FEATURES:  # until the lead adds it to FEATURES
            patch.setattr(localaml, "FEATURES", [*localaml.FEATURES, endpoints.install])
        patch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca_file))
        patch.setenv("AZUREML_CURRENT_CLOUD", os.environ.get("AZUREML_CURRENT_CLOUD", "AzureCloud"))
        storage = BlobServiceClient.from_connection_string(azurite.connection_string)
        local = taking_tokens_of(LocalAzureML(token_secret="contract-tests", storage=storage), entra)
        with serving(local, certificates) as fake:
            yield fake


@pytest.fixture
def fake(fake: LocalAzureML) -> LocalAzureML:
    """Fresh endpoint state and short provisioning times, so states change over a few polls."""
    feature = online(fake)
    feature.reset()
    getattr(fake, "request_log", {}).clear()  # Azure Monitor's log of scoring requests (localaml.monitor)
    feature.endpoint_create_seconds = feature.endpoint_update_seconds = 0.4
    feature.deployment_create_seconds = 0.8
    feature.delete_seconds = 0.4
    fake.add(ENVIRONMENT, {"image": "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference"})
    fake.add(CODE, {"codeUri": "https://example/score"})
    return fake


@pytest.fixture(scope="module")
def onnx_models() -> dict[str, bytes]:
    from localaml.samples import BROKEN_MODEL, bad_model, good_model

    return {"good": good_model(), "bad": bad_model(), "broken": BROKEN_MODEL}


def arm(fake: LocalAzureML, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    """A raw ARM request with the service's token, to see Azure's status, headers and body."""
    return requests.request(method, fake.base_url + path.lstrip("/"), params=API, json=body, headers=bearer(fake),
                            timeout=30)


def add_model(fake: LocalAzureML, data: bytes, name: str = "churn", version: str = "3", *,
              model_type: str = "custom_model") -> str:
    """An ONNX model version in dev, its file in the workspace's default datastore; its ARM id."""
    assert fake.storage is not None
    blob = f"models/{name}/{version}/model.onnx"
    fake.storage.get_blob_client(workspace_container("dev"), blob).upload_blob(data, overwrite=True)
    uri = (f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/dev"
           f"/datastores/workspaceblobstore/paths/models/{name}/{version}/")
    model = fake.add_model(DEV, name, version, model_uri=uri)
    model["properties"]["modelType"] = model_type
    return model["id"]


def wait_for(fake: LocalAzureML, path: str, states: set[str], timeout: float = 10) -> str:
    """The resource's provisioning state once it is one of `states` (`Gone` once deleted)."""
    return wait_until(lambda: (state := provisioning_state(fake, path)) in states and state, timeout=timeout,
                      interval=0.05, what=f"{path.rsplit('/', 1)[-1]} to be {' or '.join(sorted(states))}")


def create_endpoint(fake: LocalAzureML, traffic: dict[str, int] | None = None) -> dict[str, Any]:
    answer = arm(fake, "PUT", ENDPOINT, {"location": "eastus", "properties": {"authMode": "Key",
                                                                             "traffic": traffic or {}}})
    assert answer.status_code == 201, answer.text
    wait_for(fake, ENDPOINT, {"Succeeded"})
    return fake.resources[ENDPOINT.lower()]


def deployment_body(model: str, *, environment: bool = True, code: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {"endpointComputeType": "Managed", "model": model,
                                  "instanceType": "Standard_DS3_v2"}
    if environment:
        properties["environmentId"] = ENVIRONMENT
    if code:
        properties["codeConfiguration"] = {"codeId": CODE, "scoringScript": "score.py"}
    return {"location": "eastus", "sku": {"name": "Default", "capacity": 1}, "properties": properties}


def deploy(fake: LocalAzureML, name: str, model: str, states: set[str] | None = None) -> str:
    path = f"{ENDPOINT}/deployments/{name}"
    answer = arm(fake, "PUT", path, deployment_body(model))
    assert answer.status_code == 201, answer.text
    return wait_for(fake, path, states or {"Succeeded"})


def set_traffic(fake: LocalAzureML, traffic: dict[str, int], mirror: dict[str, int] | None = None) -> None:
    body = {"location": "eastus", "properties": {"authMode": "Key", "traffic": traffic, "mirrorTraffic": mirror or {}}}
    answer = arm(fake, "PUT", ENDPOINT, body)
    assert answer.status_code == 200, answer.text
    wait_for(fake, ENDPOINT, {"Succeeded"})


def score(fake: LocalAzureML, rows: list[list[float]] = ROWS, *, deployment: str | None = None,
          key: str | None = None) -> requests.Response:
    endpoint = fake.resources[ENDPOINT.lower()]
    primary = arm(fake, "POST", f"{ENDPOINT}/listKeys").json()["primaryKey"]
    headers = {"Authorization": f"Bearer {key or primary}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    return requests.post(endpoint["properties"]["scoringUri"], json={"inputs": rows}, headers=headers, timeout=30)


def operation_status(fake: LocalAzureML, url: str) -> dict[str, Any]:
    answer = requests.get(url, headers=bearer(fake), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- endpoints: long-running operations as the endpoint recording shows them ---------------------------


def test_a_new_endpoint_answers_201_creating_and_its_operation_goes_updating_then_succeeded(
    fake: LocalAzureML,
) -> None:
    answer = arm(fake, "PUT", ENDPOINT, {"location": "eastus", "properties": {"authMode": "Key", "traffic": {}}})

    # The endpoint recording: 201, Creating, scoringUri null, the operation's URL and Location (the resource).
    assert answer.status_code == 201
    body = answer.json()
    assert (body["properties"]["provisioningState"], body["properties"]["scoringUri"]) == ("Creating", None)
    operation = answer.headers["Azure-AsyncOperation"]
    assert "/providers/Microsoft.MachineLearningServices/locations/eastus/mfeOperationsStatus/" in operation
    assert body["properties"]["properties"]["AzureAsyncOperationUri"] == operation
    assert answer.headers["Location"].endswith(ENDPOINT.lstrip("/"))
    assert answer.headers["x-ms-async-operation-timeout"] == "PT30M"
    first = operation_status(fake, operation)
    assert (first["status"], first["endTime"]) == ("Updating", "0001-01-01T00:00:00+00:00")

    assert wait_for(fake, ENDPOINT, {"Succeeded"}) == "Succeeded"
    assert operation_status(fake, operation)["status"] == "Succeeded"
    done = arm(fake, "GET", ENDPOINT).json()["properties"]
    assert done["scoringUri"] == f"{fake.base_url}online/dev/churn-ep/score"


def test_the_sdk_creates_an_endpoint_and_polls_it_until_it_has_succeeded(
    platform: AzureMLPlatform, fake: LocalAzureML, cloud: Cloud, credential: TokenCredential
) -> None:
    """The SDK's own poller (the app's clients start operations without polling: started.py)."""
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    client = MLClient(credential, SUBSCRIPTION, RESOURCE_GROUP, "dev", cloud=cloud.name,
                      cloud_metadata=dict(cloud.metadata or {}), polling_interval=0.1, show_progress=False)
    online(fake).endpoint_create_seconds = 3.0  # long enough to look while it is Creating on a loaded machine
    poller = client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="churn-ep", auth_mode="key"))

    assert platform.get_endpoint("dev", "churn-ep").provisioning_state == "Creating"
    endpoint = poller.result(timeout=30)
    polls = fake.requests_to("GET", "/mfeOperationsStatus/")
    assert len(polls) >= 2, "polled while Updating, then Succeeded"
    assert endpoint.provisioning_state == "Succeeded"
    assert endpoint.scoring_uri.endswith("/online/dev/churn-ep/score")
    assert client.online_endpoints.get_keys("churn-ep").primary_key


def test_a_traffic_change_is_updating_over_polls_then_succeeded(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)
    deploy(fake, "green", model)
    set_traffic(fake, {"blue": 100})
    online(fake).endpoint_update_seconds = 2.0  # long enough to look while it is Updating

    platform.set_traffic("dev", "churn-ep", {"blue": 90, "green": 10}, {})

    states = [platform.get_endpoint("dev", "churn-ep").provisioning_state]
    # While Updating, the split asked for is shown and the one before keeps serving.
    assert platform.get_endpoint("dev", "churn-ep").traffic == {"blue": 90, "green": 10}
    assert {score(fake).headers["azureml-model-deployment"] for _ in range(10)} == {"blue"}

    def succeeded() -> bool:
        states.append(platform.get_endpoint("dev", "churn-ep").provisioning_state)
        return states[-1] == "Succeeded"

    wait_until(succeeded, timeout=10, interval=0.1, what="the adapter to read the endpoint Succeeded")
    assert states[0] == "Updating", states


# -- endpoint refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traffic", "mirror", "detail", "words"),
    [
        # REST spec (mfe.json OnlineEndpointProperties.traffic): "Traffic values need to sum to 100."
        ({"blue": 80, "green": 10}, {}, "InvalidTraffic", "Traffic values need to sum to 100, got 90."),
        # REST spec (mirrorTraffic): "Traffic values need to sum to utmost 50."
        ({"blue": 100}, {"green": 60}, "InvalidMirrorTraffic", "need to sum to utmost 50, got 60"),
        # Docs (safe rollout, mirroring limitations): a deployment gets live or mirrored traffic, not both.
        ({"blue": 50, "green": 50}, {"green": 10}, "InvalidMirrorTraffic", "live traffic or mirrored traffic"),
        # No public source words it: traffic to a deployment that is not there.
        ({"blue": 50, "gone": 50}, {}, "DeploymentNotFound", "names deployment gone, which does not exist"),
    ],
)
def test_traffic_azure_refuses_is_refused_with_its_status_and_body(
    fake: LocalAzureML, onnx_models: dict[str, bytes], traffic: dict[str, int], mirror: dict[str, int],
    detail: str, words: str,
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)
    deploy(fake, "green", model)

    answer = arm(fake, "PUT", ENDPOINT, {"location": "eastus",
                                         "properties": {"traffic": traffic, "mirrorTraffic": mirror}})

    # Azure ML's refusal shape (Azure/azure-sdk-for-python#35387): BadRequest, the reason nested.
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == ("BadRequest", "The request is invalid.")
    assert error["details"][0]["code"] == detail
    assert words in error["details"][0]["message"]
    assert fake.resources[ENDPOINT.lower()]["properties"]["provisioningState"] == "Succeeded"


def test_any_change_while_the_endpoint_is_updating_is_refused_with_409(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)
    online(fake).set_faults(ENDPOINT, provisioning="Never")  # local-only: the update stays Updating
    arm(fake, "PUT", ENDPOINT, {"location": "eastus", "properties": {"traffic": {"blue": 100}}})

    again = arm(fake, "PUT", ENDPOINT, {"location": "eastus", "properties": {"traffic": {}}})
    deployment = arm(fake, "PUT", f"{ENDPOINT}/deployments/green", deployment_body(model))

    # No public source words Azure's answer; ARM answers a write during an operation with 409 Conflict.
    for answer in (again, deployment):
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "Conflict"
        assert "churn-ep is Updating" in answer.json()["error"]["message"]
    with pytest.raises(TryLater):
        platform.create_deployment("dev", "churn-ep", "green", CHURN, DeploymentSpec())


# -- deployments --------------------------------------------------------------------------------------


def test_a_deployment_is_creating_over_polls_then_succeeded_and_its_model_really_scores(
    fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    import numpy as np

    from localaml.scoring import new_session

    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    path = f"{ENDPOINT}/deployments/blue"

    answer = arm(fake, "PUT", path, deployment_body(model))

    assert answer.status_code == 201
    assert answer.json()["properties"]["provisioningState"] == "Creating"
    polls = [arm(fake, "GET", path).json()["properties"]["provisioningState"]]
    assert wait_for(fake, path, {"Succeeded", "Failed"}) == "Succeeded"
    polls.append(arm(fake, "GET", path).json()["properties"]["provisioningState"])
    assert polls == ["Creating", "Succeeded"]
    assert operation_status(fake, answer.headers["Azure-AsyncOperation"])["status"] == "Succeeded"
    set_traffic(fake, {"blue": 100})

    scored = score(fake)

    assert scored.status_code == 200, scored.text
    assert scored.headers["azureml-model-deployment"] == "blue"
    expected = new_session(onnx_models["good"]).run(None, {"X": np.asarray(ROWS, dtype=np.float32)})
    assert scored.json()["predictions"] == expected[0].tolist()
    for got, want in zip(scored.json()["probabilities"], expected[1].tolist(), strict=True):
        assert got == pytest.approx(want)


def test_the_apps_adapter_deployment_of_an_onnx_model_without_environment_and_code_is_refused(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    """The bug: deployments had only a model and an instance type; a non-MLflow model needs scoring
    code and an environment. Azure's answer: Azure/azure-sdk-for-python#35387 (MissingDriverProgram)."""
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)

    without_code = arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(model, code=False))
    without_environment = arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(model, environment=False))

    assert without_code.status_code == 400
    assert without_code.json()["error"]["details"][0] == {
        "code": "MissingDriverProgram", "message": "Could not find driver program in the request.", "details": [],
    }
    # Azure/azure-sdk-for-python#30741: "'Environment Id' must not be empty." (ArgumentNullOrEmpty).
    assert without_environment.status_code == 400
    assert without_environment.json()["error"]["details"][0]["message"] == "'Environment Id' must not be empty."
    assert f"{ENDPOINT}/deployments/blue".lower() not in fake.resources


def test_an_mlflow_model_deploys_without_environment_and_code(
    fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"], model_type="mlflow_model")
    create_endpoint(fake)

    answer = arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(model, environment=False, code=False))

    assert answer.status_code == 201, answer.text
    assert wait_for(fake, f"{ENDPOINT}/deployments/blue", {"Succeeded", "Failed"}) == "Succeeded"


def test_a_model_that_does_not_exist_is_refused_with_404(fake: LocalAzureML) -> None:
    create_endpoint(fake)

    workspace_model = arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(f"{DEV}/models/nope/versions/1"))
    registry_model = arm(fake, "PUT", f"{ENDPOINT}/deployments/blue",
                         deployment_body("azureml://registries/mlops-registry/models/nope/versions/1"))

    # The asset service's words (asserted in azure-sdk-for-python azure-ai-projects test_datasets_async.py).
    for answer, model in ((workspace_model, f"{DEV}/models/nope/versions/1"),
                          (registry_model, "azureml://registries/mlops-registry/models/nope/versions/1")):
        assert answer.status_code == 404
        assert answer.json()["error"]["message"] == f"Could not find asset with ID: {model}"


def test_a_registry_model_loads_from_the_registrys_container(
    fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    assert fake.storage is not None
    container = fake.storage.get_container_client(registry_container("mlops-registry"))
    if not container.exists():
        container.create_container()
    container.upload_blob("models/churn/3/model.onnx", onnx_models["good"], overwrite=True)
    fake.add_model(fake.registry_id("mlops-registry"), "churn", "3",
                   model_uri=f"https://devstoreaccount1.blob.localaml.test/{container.container_name}/models/churn/3")
    create_endpoint(fake)

    state = deploy(fake, "blue", "azureml://registries/mlops-registry/models/churn/versions/3",
                   {"Succeeded", "Failed"})

    assert state == "Succeeded"
    set_traffic(fake, {"blue": 100})
    assert score(fake).status_code == 200


def test_a_model_that_does_not_load_ends_failed_with_the_reason(
    fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["broken"])
    create_endpoint(fake)
    path = f"{ENDPOINT}/deployments/blue"

    answer = arm(fake, "PUT", path, deployment_body(model))

    assert wait_for(fake, path, {"Succeeded", "Failed"}) == "Failed"
    operation = operation_status(fake, answer.headers["Azure-AsyncOperation"])
    assert operation["status"] == "Failed"
    assert "The model could not be loaded: ONNX Runtime could not load the model" in operation["error"]["message"]


def test_deleting_a_deployment_with_traffic_is_refused_and_without_it_deletes_over_polls(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)
    deploy(fake, "green", model)
    set_traffic(fake, {"blue": 100}, {"green": 20})

    live = arm(fake, "DELETE", f"{ENDPOINT}/deployments/blue")
    mirrored = arm(fake, "DELETE", f"{ENDPOINT}/deployments/green")
    set_traffic(fake, {"blue": 100})
    platform.delete_deployment("dev", "churn-ep", "green")

    # Docs (safe rollout): set a deployment's traffic to 0 before deleting it; Azure's words are not public.
    assert live.status_code == mirrored.status_code == 400
    assert live.json()["error"]["details"][0]["code"] == "DeploymentHasTraffic"
    assert "has 20% mirrorTraffic" in mirrored.json()["error"]["details"][0]["message"]
    assert fake.resources[f"{ENDPOINT}/deployments/green".lower()]["properties"]["provisioningState"] == "Deleting"
    assert wait_for(fake, f"{ENDPOINT}/deployments/green", {"Gone"}) == "Gone"
    assert [d.name for d in platform.get_endpoint("dev", "churn-ep").deployments] == ["blue"]


# -- scoring ------------------------------------------------------------------------------------------


def test_scoring_routes_by_traffic_mirrors_and_the_header_picks_a_deployment(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    for name in ("blue", "green", "shadow"):
        deploy(fake, name, model)
    set_traffic(fake, {"blue": 50, "green": 50}, {"shadow": 50})
    online(fake).rng.seed(7)

    answered = [score(fake).headers["azureml-model-deployment"] for _ in range(60)]
    picked = score(fake, deployment="shadow")

    assert 15 < answered.count("blue") < 45 and answered.count("blue") + answered.count("green") == 60
    mirrored = [s for s in online(fake).scored if s.mirrored]
    assert 15 < len(mirrored) < 45 and {s.deployment for s in mirrored} == {"shadow"}
    # The header picks a deployment, even one without live traffic, and nothing is mirrored then.
    assert picked.headers["azureml-model-deployment"] == "shadow"
    last = online(fake).scored[-1]
    assert (last.deployment, last.status, last.mirrored) == ("shadow", 200, False)
    assert len(online(fake).scored) == 61 + len(mirrored), "the picked request was not mirrored"
    # Every request, mirrored ones too, is counted in the deployment's Azure Monitor metrics (the app
    # asks up to the current whole second, so the last requests show once that second is over).
    since = datetime.now(UTC) - timedelta(minutes=5)
    shadow = wait_until(lambda: (m := platform.get_deployment_metrics("dev", "churn-ep", "shadow", since)).requests
                        >= len(mirrored) + 1 and m, timeout=5, what="the shadow's requests in its metrics")
    assert shadow.requests == len(mirrored) + 1
    assert platform.get_deployment_metrics("dev", "churn-ep", "blue", since).requests == answered.count("blue")


def test_scoring_needs_the_endpoint_key_and_a_deployment_with_traffic(
    fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)

    no_traffic = score(fake)
    wrong_key = score(fake, key="not-the-key")
    bad_rows = score(fake, [[1.0, 2.0]], deployment="blue")

    # Troubleshooting docs, scoring status codes: 404 without a deployment with positive weight, 401 bad key.
    assert no_traffic.status_code == 404
    assert no_traffic.json()["error"]["message"] == (
        "The endpoint doesn't have any valid deployment with positive weight.")
    assert wrong_key.status_code == 401
    assert bad_rows.status_code == 400
    assert "the model expects 8 features per row, got 2" in bad_rows.json()["error"]["message"]


# -- local-only faults --------------------------------------------------------------------------------


def test_an_error_rate_fails_that_share_of_requests_as_500_or_as_a_424_model_error(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)
    set_traffic(fake, {"blue": 100})
    faults = arm(fake, "POST", f"/localaml{ENDPOINT}/deployments/blue/faults", {"errorRate": 1.0})

    failed = score(fake)
    online(fake).set_faults(f"{ENDPOINT}/deployments/blue", error_status=424)
    model_error = score(fake)
    online(fake).set_faults(f"{ENDPOINT}/deployments/blue", error_rate=0.0)

    assert faults.status_code == 200 and faults.json()["errorRate"] == 1.0
    assert failed.status_code == 500
    # Troubleshooting docs: a model's error is a 424 with ms-azureml-model-error-statuscode / -reason.
    assert model_error.status_code == 424
    assert model_error.headers["ms-azureml-model-error-statuscode"] == "500"
    assert score(fake).status_code == 200
    assert [s.status for s in online(fake).scored] == [500, 424, 200]
    # The app asks Azure Monitor up to the current whole second: the last request shows once it is over.
    since = datetime.now(UTC) - timedelta(minutes=5)
    metrics = wait_until(lambda: (m := platform.get_deployment_metrics("dev", "churn-ep", "blue", since)).requests
                         >= 3 and m, timeout=5, what="the three requests in blue's metrics")
    assert (metrics.requests, metrics.errors) == (3, 1), "the app counts 5xx answers as errors"


@pytest.mark.parametrize("outcome", ["Failed", "Canceled"])
def test_provisioning_can_end_failed_or_canceled(
    fake: LocalAzureML, onnx_models: dict[str, bytes], outcome: str
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    online(fake).set_faults(f"{ENDPOINT}/deployments/blue", provisioning=outcome, reason="quota exceeded")

    answer = arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(model))

    assert wait_for(fake, f"{ENDPOINT}/deployments/blue", {"Succeeded", "Failed", "Canceled"}) == outcome
    operation = operation_status(fake, answer.headers["Azure-AsyncOperation"])
    assert (operation["status"], operation["error"]["message"]) == (outcome, "quota exceeded")


def test_provisioning_that_never_ends_stays_creating_and_blocks_changes(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    arm(fake, "POST", f"/localaml{ENDPOINT}/deployments/blue/faults", {"provisioning": "Never"})

    arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(model))
    deploy(fake, "green", model)  # made after blue, without the fault: once it is done, blue would have been
    again = arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(model))

    deployments = {d.name: d.provisioning_state for d in platform.get_endpoint("dev", "churn-ep").deployments}
    assert deployments == {"blue": "Creating", "green": "Succeeded"}
    assert again.status_code == 409


def test_a_scaling_deployment_still_scores_but_refuses_changes(
    fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)
    set_traffic(fake, {"blue": 100})

    arm(fake, "POST", f"/localaml{ENDPOINT}/deployments/blue/faults", {"scaling": 2.0})

    # REST spec: DeploymentProvisioningState includes Scaling.
    assert arm(fake, "GET", f"{ENDPOINT}/deployments/blue").json()["properties"]["provisioningState"] == "Scaling"
    assert score(fake).status_code == 200
    assert arm(fake, "PUT", f"{ENDPOINT}/deployments/blue", deployment_body(model)).status_code == 409
    assert wait_for(fake, f"{ENDPOINT}/deployments/blue", {"Succeeded"}) == "Succeeded"


def test_the_adapter_deploys_an_onnx_model_with_its_environment_and_code_and_without_them_is_refused(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)

    with pytest.raises(PlatformError, match=r"\(400\)"):
        platform.create_deployment("dev", "churn-ep", "blue", CHURN, DeploymentSpec(environment=None, code=None))
    platform.create_deployment("dev", "churn-ep", "blue", CHURN, DeploymentSpec())

    refused, put = fake.requests_to("PUT", "/deployments/blue$")
    assert "environmentId" not in refused.body["properties"]
    assert put.body["properties"]["model"] == model
    assert put.body["properties"]["environmentId"] == ENVIRONMENT
    assert put.body["properties"]["codeConfiguration"] == {"codeId": CODE, "scoringScript": "score.py"}
    assert wait_for(fake, f"{ENDPOINT}/deployments/blue", {"Succeeded", "Failed"}) == "Succeeded"
