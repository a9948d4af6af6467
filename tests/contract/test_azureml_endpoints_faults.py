"""Contracts of the Azure ML adapter for endpoints, batch scoring, deployment metrics and faults."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ClientAuthenticationError

from localaml.service import LocalAzureML
from localentra.directory import APP_CLIENT_ID
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import (
    ConfigurationError,
    DeploymentSpec,
    ModelVersion,
    NotFound,
    PlatformError,
    Transient,
    TryLater,
)

DEV = LocalAzureML.workspace_id("dev")
ENDPOINTS_API = "2022-02-01-preview"
DEPLOYMENTS_API = "2023-04-01-preview"
REGISTRY_MODEL = ModelVersion(
    location="registry:mlops-registry", name="churn", version="3",
    uri="azureml://registries/mlops-registry/models/churn/versions/3",
)


def _endpoint(fake: LocalAzureML, state: str = "Succeeded") -> None:
    fake.add_online_endpoint("dev", "churn-ep", {"blue": 100}, {"green": 0}, state=state)
    fake.add_online_deployment("dev", "churn-ep", "blue", f"{DEV}/models/churn/versions/2")
    fake.add_online_deployment("dev", "churn-ep", "green", REGISTRY_MODEL.uri)


def test_get_endpoint_reads_traffic_mirror_state_and_deployments(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    _endpoint(fake)

    endpoint = platform.get_endpoint("dev", "churn-ep")

    assert (endpoint.traffic, endpoint.mirror_traffic, endpoint.provisioning_state) == (
        {"blue": 100}, {}, "Succeeded"
    )
    assert {d.name: d.model_uri for d in endpoint.deployments} == {
        "blue": f"{DEV}/models/churn/versions/2", "green": REGISTRY_MODEL.uri,
    }


def test_set_traffic_puts_traffic_and_mirror_and_does_not_wait(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    _endpoint(fake)

    platform.set_traffic("dev", "churn-ep", {"blue": 90, "green": 10}, {})

    [put] = fake.requests_to("PUT", r"/onlineEndpoints/churn-ep$")
    assert (put.path, put.api_version) == (f"{DEV}/onlineEndpoints/churn-ep", ENDPOINTS_API)
    assert put.body["properties"]["traffic"] == {"blue": 90, "green": 10}
    assert put.body["properties"]["mirrorTraffic"] == {}
    # Started, not awaited: the fake still says Updating and the call has returned.
    assert platform.get_endpoint("dev", "churn-ep").is_updating


def test_set_mirror_traffic(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    _endpoint(fake)

    platform.set_traffic("dev", "churn-ep", {"blue": 100}, {"green": 20})

    [put] = fake.requests_to("PUT", r"/onlineEndpoints/churn-ep$")
    assert put.body["properties"]["traffic"] == {"blue": 100}
    assert put.body["properties"]["mirrorTraffic"] == {"green": 20}


def test_set_traffic_while_the_endpoint_is_updating_is_try_later(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    _endpoint(fake, state="Updating")

    with pytest.raises(TryLater, match="churn-ep in dev is Updating") as raised:
        platform.set_traffic("dev", "churn-ep", {"blue": 90, "green": 10}, {})

    assert raised.value.retry_after is None  # busy, not throttled: the rollout's next tick tries again
    assert fake.requests_to("PUT", "onlineEndpoints") == []


def test_a_409_on_the_traffic_update_is_try_later(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    _endpoint(fake)
    fake.fail("PUT", r"/onlineEndpoints/churn-ep$", 409, code="Conflict", message="operation in progress")

    with pytest.raises(TryLater, match=r"\(409\): Conflict: operation in progress"):
        platform.set_traffic("dev", "churn-ep", {"blue": 90, "green": 10}, {})


def test_traffic_that_does_not_add_up_is_refused_before_any_request(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    with pytest.raises(ValueError, match="traffic must add up to 100"):
        platform.set_traffic("dev", "churn-ep", {"blue": 80, "green": 10}, {})
    with pytest.raises(ValueError, match="mirror traffic for 'green' must be an integer from 0 to 50"):
        platform.set_traffic("dev", "churn-ep", {"blue": 100}, {"green": 60})
    assert fake.requests == []


@pytest.mark.parametrize(
    ("mirror", "refusal"),
    [({"green": 30, "red": 30}, "mirror traffic can go to one deployment only"),
     ({"green": 30, "red": 20}, "mirror traffic can go to one deployment only")],
)
def test_mirror_traffic_goes_to_one_deployment_and_at_most_50_in_all(
    platform: AzureMLPlatform, fake: LocalAzureML, mirror: dict[str, int], refusal: str
) -> None:
    """Azure ML docs, "Safe rollout for online endpoints": mirror to only one deployment, at most 50 percent."""
    with pytest.raises(ValueError, match=refusal):
        platform.set_traffic("dev", "churn-ep", {"blue": 100}, mirror)
    assert fake.requests == []


SPEC = DeploymentSpec(instance_type="Standard_DS2_v2", instance_count=2)


def test_create_deployment_references_the_registry_model(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_online_endpoint("dev", "churn-ep", {"blue": 100})
    fake.add_model(fake.registry_id("mlops-registry"), "churn", "3")

    platform.create_deployment("dev", "churn-ep", "green", REGISTRY_MODEL, SPEC)
    platform.create_deployment("dev", "churn-ep", "green", REGISTRY_MODEL, SPEC)

    [put] = fake.requests_to("PUT", r"/deployments/green$")
    assert (put.path, put.api_version) == (f"{DEV}/onlineEndpoints/churn-ep/deployments/green", DEPLOYMENTS_API)
    assert put.body["properties"]["model"] == "azureml://registries/mlops-registry/models/churn/versions/3"
    assert put.body["properties"]["instanceType"] == "Standard_DS2_v2"
    assert put.body["properties"]["endpointComputeType"] == "Managed"
    assert put.body["sku"] == {"name": "Default", "capacity": 2}
    # An ONNX model is not an MLflow model: the deployment names its environment and scoring code.
    assert put.body["properties"]["environmentId"].endswith("/environments/onnx-runtime/versions/1")
    assert put.body["properties"]["codeConfiguration"]["scoringScript"] == "score.py"
    assert put.body["properties"]["codeConfiguration"]["codeId"].endswith("/codes/onnx-score/versions/1")


def test_delete_deployment_starts_a_delete_and_a_gone_one_is_fine(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    _endpoint(fake)

    platform.delete_deployment("dev", "churn-ep", "green")
    fake.fail("DELETE", r"/deployments/gone$", 404, code="ResourceNotFound")
    platform.delete_deployment("dev", "churn-ep", "gone")

    assert [r.path for r in fake.requests_to("DELETE", "deployments")] == [
        f"{DEV}/onlineEndpoints/churn-ep/deployments/green", f"{DEV}/onlineEndpoints/churn-ep/deployments/gone",
    ]


def test_invoke_batch_endpoint_posts_a_named_job_and_returns_the_name_it_got(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    fake.add_batch_endpoint("dev", "score-batch")

    job = platform.invoke_batch_endpoint("dev", "score-batch", "score-abc", "https://acct.blob.core.windows.net/in/d/")

    # The endpoint names the job itself (azure-sdk-for-python#32763); the Job carries that name.
    assert job.name != "score-abc"
    assert f"{DEV}/jobs/{job.name}".lower() in fake.resources
    [post] = fake.requests_to("POST", r"^/batch/score-batch/jobs$")
    assert post.body == {
        "properties": {
            "inputData": {"UriFolder": {"jobInputType": "UriFolder", "uri": "https://acct.blob.core.windows.net/in/d/"}},
            "name": "score-abc",
        }
    }


def test_deployment_metrics_come_from_azure_monitor(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    def series(code: str | None, *values: float) -> dict:
        dims = [{"name": {"value": "envoy_response_code"}, "value": code}] if code else []
        return {"metadatavalues": dims, "data": [{"timeStamp": f"T{i}", "average": v} for i, v in enumerate(values)]}

    fake.monitor_series["RequestsPerMinute"] = [series("200", 50, 40), series("503", 3, 1), series("404", 6)]
    fake.monitor_series["RequestLatency_P95"] = [series(None, 120.0, 180.0)]
    fake.monitor_series["RequestLatency_P99"] = [series(None, 300.0, 250.0)]
    since = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

    metrics = platform.get_deployment_metrics("dev", "churn-ep", "green", since)

    assert (metrics.requests, metrics.errors, metrics.latency_p95_ms, metrics.latency_p99_ms) == (100, 4, 180.0, 300.0)
    counts, latencies = fake.requests_to("GET", r"/providers/Microsoft\.Insights/metrics$")
    assert counts.path == f"{DEV}/onlineEndpoints/churn-ep/deployments/green/providers/Microsoft.Insights/metrics"
    assert counts.query["api-version"] == "2023-10-01"
    assert counts.query["metricnamespace"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
    assert counts.query["metricnames"] == "RequestsPerMinute"
    assert counts.query["$filter"] == "envoy_response_code eq '*'"
    assert counts.query["timespan"].startswith("2026-11-21T09:00:00Z/")
    assert latencies.query["metricnames"] == "RequestLatency_P95,RequestLatency_P99"


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_is_try_later_with_retry_after_and_no_retry_inside(
    platform: AzureMLPlatform, fake: LocalAzureML, status: int
) -> None:
    fake.add_model(DEV, "churn", "3")
    fake.fail("GET", r"/models/churn/versions/3$", status, headers={"Retry-After": "7"}, code="TooManyRequests")

    with pytest.raises(TryLater, match=f"\\({status}\\)") as raised:
        platform.get_model("dev", "churn", "3")

    assert raised.value.retry_after == 7
    assert len(fake.requests) == 1
    assert platform.get_model("dev", "churn", "3").version == "3"  # the next try goes through


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_server_error_without_retry_after_is_transient(
    platform: AzureMLPlatform, fake: LocalAzureML, status: int
) -> None:
    fake.fail("GET", r"/onlineEndpoints/churn-ep$", status, code="ServerBusy")

    with pytest.raises(Transient, match=f"online endpoint churn-ep in dev \\({status}\\)"):
        platform.get_endpoint("dev", "churn-ep")
    assert len(fake.requests) == 1


def test_a_missing_endpoint_is_not_found(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    with pytest.raises(NotFound, match="online endpoint churn-ep in dev was not found"):
        platform.get_endpoint("dev", "churn-ep")


def test_a_missing_registry_is_not_found(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    with pytest.raises(NotFound, match="registry nope-registry was not found"):
        platform.get_model("registry:nope-registry", "churn", "1")


def test_forbidden_is_a_configuration_error_naming_identity_and_scope(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    fake.fail("GET", r"/models/churn/versions/3$", 403, code="AuthorizationFailed", message="no access")

    with pytest.raises(ConfigurationError) as raised:
        platform.get_model("dev", "churn", "3")

    assert f"the service principal {APP_CLIENT_ID} (a client secret) is not allowed" in str(raised.value)
    assert f"grant it a role on the workspace {DEV}" in str(raised.value)


def test_no_token_is_a_configuration_error_naming_identity_and_scope(fake: LocalAzureML, cloud, credential) -> None:
    from shared.settings import Settings

    class Refusing:
        def get_token(self, *scopes: str, **kwargs: object) -> None:
            raise ClientAuthenticationError("ManagedIdentityCredential authentication unavailable")

    settings = Settings.from_environ({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "MLOPS_WORKSPACES": f"dev={DEV}",
        "AZURE_CLIENT_ID": "33333333-3333-3333-3333-333333333333",
    })
    platform = AzureMLPlatform(settings, credential=Refusing(), cloud=cloud)

    with pytest.raises(ConfigurationError, match="could not get a token for") as raised:
        platform.get_model("dev", "churn", "3")
    assert "Refusing" in str(raised.value)
    with pytest.raises(ConfigurationError, match=cloud.arm_scope):
        platform.get_deployment_metrics("dev", "churn-ep", "green", datetime.now(UTC) - timedelta(minutes=5))


def test_an_unknown_workspace_is_a_configuration_error(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    expected = r"workspace 'staging' is not in MLOPS_WORKSPACES \(configured: dev, prod\)"
    with pytest.raises(ConfigurationError, match=expected):
        platform.get_model("staging", "churn", "3")


def test_a_refused_request_keeps_the_service_message(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.fail("GET", r"/onlineEndpoints/churn-ep$", 400, code="BadRequest", message="bad endpoint name")

    with pytest.raises(PlatformError, match=r"\(400\): BadRequest: bad endpoint name"):
        platform.get_endpoint("dev", "churn-ep")


def test_a_throttled_batch_invoke_is_try_later(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    fake.add_batch_endpoint("dev", "score-batch")
    fake.fail("POST", r"^/batch/score-batch/jobs$", 429, headers={"Retry-After": "12"}, code="TooManyRequests")

    with pytest.raises(TryLater, match=r"batch endpoint score-batch in dev \(429\)") as raised:
        platform.invoke_batch_endpoint("dev", "score-batch", "score-abc", "https://acct.blob.core.windows.net/in/a.csv")

    assert raised.value.retry_after == 12
    assert len(fake.requests_to("POST", "^/batch/")) == 1


def test_a_call_that_hangs_times_out_as_transient_without_holding_other_requests(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    fake.add_model(DEV, "churn", "3")
    _endpoint(fake)
    platform._clients.read_timeout = 1  # 60 s in the app; azure-core's own default would be 300 s
    fake.fail("GET", r"/models/churn/versions/3$", 200, delay=3)
    started = time.monotonic()

    with pytest.raises(Transient, match="Read timed out"):
        platform.get_model("dev", "churn", "3")

    assert time.monotonic() - started < 2.5
    assert platform.get_endpoint("dev", "churn-ep").traffic == {"blue": 100}  # the service answers others meanwhile
