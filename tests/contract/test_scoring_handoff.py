"""Hand-off of inputs too big for Functions: the scoring jobs, a real Azurite over TLS (batch
endpoints only read https:// inputs) and the real `azure-ai-ml` client against the fake service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import azure.functions as func
import pytest

from devhost.azurite import Azurite, running_azurite
from handlers import scoring as scoring_handlers
from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import Transient
from shared.scoring.config import ScoringConfig
from shared.scoring.jobs import JOBS, Scoring, status, submit_blob
from shared.settings import Settings

if TYPE_CHECKING:
    from localaml.tls import Certificates

INPUT = b"id,f0,f1\n" + b"".join(b"r%d,0.%d,0.5\n" % (i, i) for i in range(200))


@pytest.fixture(scope="module")
def azurite_tls(certificates: Certificates, service: LocalAzureML) -> Iterator[Azurite]:
    """Azurite over HTTPS with the certificate the fake serves, trusted through REQUESTS_CA_BUNDLE."""
    with running_azurite(tls=(str(certificates.cert_file), str(certificates.key_file))) as azurite:
        yield azurite


@pytest.fixture
def ports(azurite_tls: Azurite, platform: AzureMLPlatform, tmp_path: Path) -> Scoring:
    suffix = uuid.uuid4().hex[:8]
    config = ScoringConfig(
        input_container=f"in-{suffix}",
        output_container=f"out-{suffix}",
        queue=f"ranges-{suffix}",
        handoff_bytes=1000,
        batch_endpoint="dev/score-batch",
        model_cache=str(tmp_path / "models"),
    )
    settings = Settings.from_environ(
        {"AzureWebJobsStorage": azurite_tls.connection_string, "MLOPS_STATE_CONTAINER": f"state-{suffix}"}
    )
    ports = Scoring.from_settings(settings, platform, config)
    for container in (config.input_container, config.output_container):
        ports.blobs.create_container(container)
    if not ports.blobs.get_container_client("models").exists():
        ports.blobs.create_container("models")
    ports.blobs.get_blob_client("models", "m.onnx").upload_blob(b"never loaded: the endpoint scores", overwrite=True)
    return ports


def upload(ports: Scoring, name: str) -> None:
    ports.blobs.get_blob_client(ports.config.input_container, name).upload_blob(INPUT)


def post_score(ports: Scoring, monkeypatch: pytest.MonkeyPatch, name: str) -> func.HttpResponse:
    monkeypatch.setattr(scoring_handlers, "_ports", lambda: ports)
    body = json.dumps({"input": f"{ports.config.input_container}/{name}", "model": {"blob": "models/m.onnx"}})
    handler = scoring_handlers.score_submit.build().get_user_function()
    return handler(func.HttpRequest("POST", "/api/score", body=body.encode()))


def test_a_big_input_is_handed_to_the_batch_endpoint_once_and_nothing_is_scored_here(
    ports: Scoring, fake: LocalAzureML, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_batch_endpoint("dev", "score-batch")
    upload(ports, "big.csv")

    response = post_score(ports, monkeypatch, "big.csv")
    again = post_score(ports, monkeypatch, "big.csv")

    assert response.status_code == 202, response.get_body()
    job = json.loads(response.get_body())
    assert job["state"] == "handed_off"
    [batch_job] = [key.rsplit("/", 1)[1] for key in fake.resources if "/jobs/" in key]
    assert job["handoff"] == {"job": ["dev", batch_job], "endpoint": "score-batch"}, "the name the endpoint gave"
    assert json.loads(again.get_body())["job_id"] == job["job_id"]
    [post] = fake.requests_to("POST", r"^/batch/score-batch/jobs$")
    url = ports.blobs.get_blob_client(ports.config.input_container, "big.csv").url
    assert post.body["properties"]["name"] == job["job_id"]  # asked for, ignored (azure-sdk-for-python#32763)
    assert post.body["properties"]["inputData"] == {"UriFile": {"jobInputType": "UriFile", "uri": url}}
    assert ports.queue.client.peek_messages() == [], "a handed-off job queues no ranges"
    assert (status(job["job_id"], ports) or {})["handoff"]["status"] == "queued"


def test_a_hand_off_retried_while_the_first_is_under_way_starts_one_batch_job(
    ports: Scoring, fake: LocalAzureML, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint ignores the job name (azure-sdk-for-python#32763): a retry cannot find the batch job by it."""
    fake.add_batch_endpoint("dev", "score-batch")
    upload(ports, "big.csv")
    invoke = ports.platform.invoke_batch_endpoint
    retries: list[func.HttpResponse] = []

    def overlapped(*args: str) -> object:
        if not retries:
            retries.append(post_score(ports, monkeypatch, "big.csv"))  # the retry arrives before the first returns
        return invoke(*args)

    monkeypatch.setattr(ports.platform, "invoke_batch_endpoint", overlapped)
    first = json.loads(post_score(ports, monkeypatch, "big.csv").get_body())

    assert len(fake.requests_to("POST", r"^/batch/score-batch/jobs$")) == 1
    assert json.loads(retries[0].get_body())["state"] == "handing_off"
    assert first["state"] == "handed_off"
    later = json.loads(post_score(ports, monkeypatch, "big.csv").get_body())
    assert later["handoff"] == first["handoff"]
    assert len(fake.requests_to("POST", r"^/batch/score-batch/jobs$")) == 1


def test_an_endpoint_that_does_not_exist_answers_502_naming_it_and_records_no_job(
    ports: Scoring, fake: LocalAzureML, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(ports, "big.csv")

    response = post_score(ports, monkeypatch, "big.csv")

    assert response.status_code == 502
    error = json.loads(response.get_body())["error"]
    assert "above MLOPS_SCORING_HANDOFF_BYTES" in error and "batch endpoint dev/score-batch" in error, error
    assert list(ports.state.list(JOBS)) == []


def test_a_failing_platform_answers_503_with_retry_after_and_the_blob_trigger_retries(
    ports: Scoring, fake: LocalAzureML, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_batch_endpoint("dev", "score-batch")
    fake.add_model(fake.workspace_id("dev"), "churn", "3")
    fake.fail("POST", r"^/batch/score-batch/jobs$", 503, times=10)
    name = "dev/churn/3/big.csv"
    upload(ports, name)

    response = post_score(ports, monkeypatch, name)
    with pytest.raises(Transient):
        submit_blob(ports.config.input_container, name, ports)

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert list(ports.state.list(JOBS)) == [], "a retry must find no failed job in its way"


def test_a_blob_the_endpoint_refuses_becomes_a_failed_job_with_the_reason(
    ports: Scoring, fake: LocalAzureML
) -> None:
    name = "dev/churn/3/big.csv"
    upload(ports, name)
    fake.add_model(fake.workspace_id("dev"), "churn", "3")

    job = submit_blob(ports.config.input_container, name, ports)

    assert job["state"] == "failed"
    assert "batch endpoint dev/score-batch did not take it" in job["error"], job["error"]
