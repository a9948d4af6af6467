"""Batch scoring through the local host: HTTP submit and status, and the Event Grid blob trigger,
also with the queue and containers renamed by app settings."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite
from devhost.stack import Stack, local_stack
from devhost.waiting import wait_until
from localaml import samples

FEATURES = samples.FEATURE_NAMES


def upload_csv(stack: Stack, name: str, rows: int, container_name: str = "scoring-input") -> np.ndarray:
    features, _ = samples.make_data(rows=rows, seed=5)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["id", *FEATURES])
    for number, row in enumerate(features):
        writer.writerow([number, *(f"{value:.6f}" for value in row)])
    service = BlobServiceClient.from_connection_string(stack.settings.storage_connection or "")
    container = service.get_container_client(container_name)
    if not container.exists():
        container.create_container()
    container.upload_blob(name, text.getvalue().encode(), overwrite=True)
    return np.loadtxt(io.StringIO(text.getvalue()), delimiter=",", skiprows=1, dtype=np.float32)[:, 1:]


def test_a_file_submitted_over_http_is_scored_like_session_run(azurite: Azurite, tmp_path: Path) -> None:
    with local_stack(tmp_path, azurite=azurite) as stack:
        model = stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=1), {})
        features = upload_csv(stack, "batches/jan.csv", rows=500)
        response = stack.machine("POST", "score", json={
            "input": "scoring-input/batches/jan.csv",
            "model": {"location": "dev", "name": model.name, "version": model.version},
            "features": FEATURES, "id_columns": ["id"], "output": {"path": "jan-scored.csv"},
        })
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        done = wait_until(lambda: (s := stack.machine("GET", f"score/{job_id}").json())["state"] in
                          ("completed", "failed") and s, timeout=60)
        assert done["state"] == "completed", done

        service = BlobServiceClient.from_connection_string(stack.settings.storage_connection or "")
        scored = service.get_blob_client("scoring-output", "jan-scored.csv").download_blob().readall().decode()
        rows = list(csv.DictReader(io.StringIO(scored)))
        session = ort.InferenceSession(samples.good_model(seed=1), providers=["CPUExecutionProvider"])
        expected = session.run(None, {session.get_inputs()[0].name: features})[0]
        assert [int(r["id"]) for r in rows] == list(range(500))
        assert [int(float(r["prediction"])) for r in rows] == expected.tolist()


def test_bad_requests_get_400_naming_the_field_and_unknown_jobs_404(azurite: Azurite, tmp_path: Path) -> None:
    with local_stack(tmp_path, azurite=azurite) as stack:
        bad = stack.machine("POST", "score", json={"input": "scoring-input/../x.csv", "model": {"blob": "m/x.onnx"}})
        assert bad.status_code == 400 and bad.json()["field"] == "input"
        unknown = stack.machine("GET", "score/score-" + "0" * 24, headers={"x-correlation-id": "e2e-unknown-job"})
        assert unknown.status_code == 404  # well formed, unknown
        assert unknown.json()["correlation_id"] == unknown.headers["x-correlation-id"] == "e2e-unknown-job"
        malformed = stack.machine("GET", "score/x..y")
        assert malformed.status_code == 400 and malformed.json()["field"] == "job_id"
        assert malformed.json()["correlation_id"] == malformed.headers["x-correlation-id"]
        assert requests.post(f"{stack.host.url}/api/score", json={}, timeout=10).status_code == 401


def blob_created(stack: Stack, container: str, name: str) -> requests.Response:
    """Deliver a BlobCreated event to the blob extension's webhook, as Event Grid does for `score_blob`."""
    event = {
        "id": f"blob-event-{uuid.uuid4().hex[:8]}", "eventType": "Microsoft.Storage.BlobCreated",
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventTime": "2026-11-21T10:00:00Z", "dataVersion": "", "metadataVersion": "1",
        "data": {"api": "PutBlob", "url": f"http://127.0.0.1/devstoreaccount1/{container}/{name}"},
    }
    return requests.post(
        f"{stack.host.url}/runtime/webhooks/blobs",
        params={"functionName": "Host.Functions.score_blob", "code": stack.host.keys.blobs_extension},
        json=[event], headers={"aeg-event-type": "Notification"}, timeout=30,
    )


def test_a_blob_created_event_starts_a_job(azurite: Azurite, tmp_path: Path) -> None:
    with local_stack(tmp_path, azurite=azurite) as stack:
        stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=1), {})
        upload_csv(stack, "dev/credit-risk/1/feb.csv", rows=50)
        response = blob_created(stack, "scoring-input", "dev/credit-risk/1/feb.csv")
        assert response.status_code == 202, response.text
        jobs = wait_until(lambda: stack.state.list("scoring-jobs"), timeout=30)
        assert jobs[0]["input"]["name"] == "dev/credit-risk/1/feb.csv"
        assert jobs[0]["model"]["ref"] == {"location": "dev", "name": "credit-risk", "version": "1"}
        job_id = jobs[0]["id"]
        done = wait_until(lambda: (s := stack.machine("GET", f"score/{job_id}").json())["state"] in
                          ("completed", "failed") and s, timeout=60)
        assert done["state"] == "completed", done.get("error")
        assert done["rows_done"] == 50


def test_renamed_queue_and_containers_are_what_the_triggers_bind(azurite: Azurite, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    renamed = {
        "MLOPS_SCORING_INPUT_CONTAINER": f"files-in-{suffix}",
        "MLOPS_SCORING_OUTPUT_CONTAINER": f"files-out-{suffix}",
        "MLOPS_SCORING_QUEUE": f"ranges-{suffix}",
    }
    with local_stack(tmp_path, extra_settings=renamed, azurite=azurite) as stack:
        stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=1), {})
        upload_csv(stack, "dev/credit-risk/1/mar.csv", rows=40, container_name=renamed["MLOPS_SCORING_INPUT_CONTAINER"])
        # The blob trigger listens to the renamed container only: an event for the default one is not its.
        assert blob_created(stack, "scoring-input", "dev/credit-risk/1/mar.csv").status_code == 500
        assert not stack.state.list("scoring-jobs")

        response = blob_created(stack, renamed["MLOPS_SCORING_INPUT_CONTAINER"], "dev/credit-risk/1/mar.csv")
        assert response.status_code == 202, response.text
        [job] = wait_until(lambda: stack.state.list("scoring-jobs"), timeout=30)
        # Ranges go to the renamed queue; only a score_range bound to it can finish the job.
        done = wait_until(lambda: (s := stack.machine("GET", f"score/{job['id']}").json())["state"] in
                          ("completed", "failed") and s, timeout=60)
        assert done["state"] == "completed", done.get("error")
        assert done["rows_done"] == 40
        service = BlobServiceClient.from_connection_string(stack.settings.storage_connection or "")
        output = service.get_container_client(renamed["MLOPS_SCORING_OUTPUT_CONTAINER"])
        assert [blob.name for blob in output.list_blobs()], "the output went to the renamed container"
        queues = QueueServiceClient.from_connection_string(stack.settings.storage_connection or "")
        assert renamed["MLOPS_SCORING_QUEUE"] in {queue.name for queue in queues.list_queues()}
