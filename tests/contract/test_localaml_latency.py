"""The local Azure ML service's local-only control that makes one deployment slower on purpose (to judge a
canary against its champion, and a platform spike when every deployment is slowed): what it accepts, and that
the slower answers show in the deployment's Azure Monitor latency, minute by minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devhost.waiting import wait_until
from localaml.endpoints import online
from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import DeploymentMetrics
from tests.contract.test_localaml_endpoints import (  # noqa: F401  (fixtures: service, fake, onnx_models)
    ENDPOINT,
    add_model,
    arm,
    create_endpoint,
    deploy,
    fake,
    onnx_models,
    score,
    service,
    set_traffic,
)


def test_a_deployment_made_slower_answers_that_much_later_and_its_p95_shows_it(
    platform: AzureMLPlatform, fake: LocalAzureML, onnx_models: dict[str, bytes]  # noqa: F811
) -> None:
    model = add_model(fake, onnx_models["good"])
    create_endpoint(fake)
    deploy(fake, "blue", model)
    set_traffic(fake, {"blue": 100})
    since = datetime.now(UTC) - timedelta(minutes=1)

    slowed = arm(fake, "POST", f"/localaml{ENDPOINT}/deployments/blue/faults", {"latencyMs": 120})
    answers = [score(fake) for _ in range(3)]

    assert slowed.status_code == 200 and slowed.json()["latencyMs"] == 120
    assert all(answer.status_code == 200 for answer in answers)
    assert all(scored.latency_ms >= 120 for scored in online(fake).scored)
    def measured() -> DeploymentMetrics | None:
        found = platform.get_deployment_metrics("dev", "churn-ep", "blue", since)
        return found if found.requests >= 3 else None

    metrics = wait_until(measured, timeout=5, what="the three requests in blue's metrics")
    assert metrics is not None and metrics.latency_p95_ms is not None and metrics.latency_p95_ms >= 120
    assert any(value is not None and value >= 120 for value in metrics.series["RequestLatency_P95"])


def test_an_added_latency_that_is_not_a_number_from_0_to_10_s_is_refused_naming_it(
    fake: LocalAzureML,  # noqa: F811
) -> None:
    for wrong in (-1, 10_001, "slow", True):
        answer = arm(fake, "POST", f"/localaml{ENDPOINT}/deployments/blue/faults", {"latencyMs": wrong})
        assert answer.status_code == 400 and "latencyMs" in answer.json()["error"]["message"]
    assert online(fake).faults.get(f"{ENDPOINT}/deployments/blue".lower()) is None, "nothing half set"
