"""Batch scoring through the local host: HTTP submit and status, and the Event Grid blob trigger."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite
from devhost.stack import Stack, local_stack, wait_until
from localaml import samples

FEATURES = samples.FEATURE_NAMES


def upload_csv(stack: Stack, name: str, rows: int) -> np.ndarray:
    features, _ = samples.make_data(rows=rows, seed=5)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["id", *FEATURES])
    for number, row in enumerate(features):
        writer.writerow([number, *(f"{value:.6f}" for value in row)])
    service = BlobServiceClient.from_connection_string(stack.settings.storage_connection or "")
    container = service.get_container_client("scoring-input")
    if not container.exists():
        container.create_container()
    container.upload_blob(name, text.getvalue().encode(), overwrite=True)
    return np.loadtxt(io.StringIO(text.getvalue()), delimiter=",", skiprows=1, dtype=np.float32)[:, 1:]


def test_a_file_submitted_over_http_is_scored_like_session_run(azurite: Azurite, tmp_path: Path) -> None:
    with local_stack(tmp_path, azurite=azurite) as stack:
        model = stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=1), {})
        features = upload_csv(stack, "batches/jan.csv", rows=500)
        response = stack.admin("POST", "score", json={
            "input": "scoring-input/batches/jan.csv",
            "model": {"location": "dev", "name": model.name, "version": model.version},
            "features": FEATURES, "id_columns": ["id"], "output": {"path": "jan-scored.csv"},
        })
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        done = wait_until(lambda: (s := stack.admin("GET", f"score/{job_id}").json())["state"] in
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
        bad = stack.admin("POST", "score", json={"input": "scoring-input/../x.csv", "model": {"blob": "m/x.onnx"}})
        assert bad.status_code == 400 and "input" in bad.text
        assert stack.admin("GET", "score/score-" + "0" * 24).status_code == 404  # well formed, unknown
        malformed = stack.admin("GET", "score/x..y")
        assert malformed.status_code == 400 and malformed.json()["field"] == "job_id"
        assert requests.post(f"{stack.host.url}/api/score", json={}, timeout=10).status_code == 401


def test_a_blob_created_event_starts_a_job(azurite: Azurite, tmp_path: Path) -> None:
    with local_stack(tmp_path, azurite=azurite) as stack:
        stack.aml.register_model("dev", "credit-risk", samples.good_model(seed=1), {})
        upload_csv(stack, "dev/credit-risk/1/feb.csv", rows=50)
        event = {
            "id": "blob-event-1", "eventType": "Microsoft.Storage.BlobCreated",
            "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z",
            "subject": "/blobServices/default/containers/scoring-input/blobs/dev/credit-risk/1/feb.csv",
            "eventTime": "2026-11-21T10:00:00Z", "dataVersion": "", "metadataVersion": "1",
            "data": {"api": "PutBlob", "url": "http://127.0.0.1/devstoreaccount1/scoring-input/dev/credit-risk/1/feb.csv"},
        }
        response = requests.post(
            f"{stack.host.url}/runtime/webhooks/blobs",
            params={"functionName": "Host.Functions.score_blob", "code": stack.host.keys.blobs_extension},
            json=[event], headers={"aeg-event-type": "Notification"}, timeout=30,
        )
        assert response.status_code == 202, response.text
        jobs = wait_until(lambda: stack.state.list("scoring-jobs"), timeout=30)
        assert jobs[0]["input"]["name"] == "dev/credit-risk/1/feb.csv"
        assert jobs[0]["model"]["ref"] == {"location": "dev", "name": "credit-risk", "version": "1"}
        job_id = jobs[0]["id"]
        done = wait_until(lambda: (s := stack.admin("GET", f"score/{job_id}").json())["state"] in
                          ("completed", "failed") and s, timeout=60)
        assert done["state"] == "completed", done.get("error")
        assert done["rows_done"] == 50
