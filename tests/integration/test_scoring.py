"""Batch scoring end to end on a real Azurite with real ONNX Runtime sessions."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from devhost.azurite import Azurite
from devhost.waiting import wait_until
from shared.scoring.config import ScoringConfig
from shared.scoring.errors import InvalidInput
from shared.scoring.jobs import JOBS, Scoring, status, submit, submit_blob
from shared.scoring.request import ScoringRequest
from shared.scoring.worker import drain
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FEATURES = [f"f{i}" for i in range(5)]
ROWS = 3000


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    """A small gradient-boosted classifier that names its features in the ONNX metadata."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
    model = GradientBoostingClassifier(n_estimators=10, max_depth=3).fit(x, y)
    onnx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    entry = onnx.metadata_props.add()
    entry.key, entry.value = "feature_names", json.dumps(FEATURES)
    return onnx.SerializeToString()


@pytest.fixture
def ports(settings: Settings, model_bytes: bytes, tmp_path: Path) -> Scoring:
    suffix = uuid.uuid4().hex[:8]
    config = ScoringConfig(
        input_container=f"in-{suffix}",
        output_container=f"out-{suffix}",
        queue=f"ranges-{suffix}",
        range_bytes=40_000,
        chunk_bytes=16_384,
        block_bytes=16_384,
        threads=1,
        model_cache=str(tmp_path / "models"),
    )
    ports = Scoring.from_settings(settings, config=config)
    for container in (config.input_container, config.output_container, "models"):
        if not ports.blobs.get_container_client(container).exists():
            ports.blobs.create_container(container)
    ports.blobs.get_blob_client("models", "gbt.onnx").upload_blob(model_bytes, overwrite=True)
    return ports


def frame(rows: int = ROWS, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    columns = {"id": [f"r{i}" for i in range(rows)], **{name: values[:, j] for j, name in enumerate(FEATURES)}}
    return pa.table(columns)


def encode(table: pa.Table, fmt: str) -> bytes:
    sink = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, sink)
    elif fmt == "parquet":
        pq.write_table(table, sink, row_group_size=700)
    else:
        sink.write("".join(json.dumps(row) + "\n" for row in table.to_pylist()).encode())
    return sink.getvalue()


def upload(ports: Scoring, name: str, data: bytes) -> str:
    ports.blobs.get_blob_client(ports.config.input_container, name).upload_blob(data, overwrite=True)
    return f"{ports.config.input_container}/{name}"


def run(ports: Scoring, request: ScoringRequest) -> dict:
    job = submit(request, ports)
    drain(ports, visibility=10, idle_exit=0.3)
    return status(job["job_id"], ports) or {}


def read_output(ports: Scoring, job: dict) -> pa.Table:
    container = ports.blobs.get_container_client(ports.config.output_container)
    path = job["output"].split("/", 1)[1]
    if job["format"] == "csv":
        data = container.get_blob_client(path).download_blob().readall()
        return pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(column_types={"id": pa.string()}))
    parts = sorted(blob.name for blob in container.list_blobs(name_starts_with=path + "/"))
    return pa.concat_tables(
        [pq.read_table(io.BytesIO(container.get_blob_client(p).download_blob().readall())) for p in parts]
    )


def manifest(ports: Scoring, job: dict) -> dict:
    name = job["manifest"].split("/", 1)[1]
    return json.loads(ports.blobs.get_blob_client(ports.config.output_container, name).download_blob().readall())


def expected(model_bytes: bytes, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    matrix = np.column_stack([table.column(name).to_numpy() for name in FEATURES]).astype(np.float32)
    label, probabilities = session.run(["label", "probabilities"], {session.get_inputs()[0].name: matrix})
    return label, probabilities


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_format_matches_session_run_on_the_same_rows(
    ports: Scoring, model_bytes: bytes, fmt: str, threads: int
) -> None:
    # Batches of 7 rows: with 3 threads, each chunk's batches are scored out of order and must come back in order.
    ports = dataclasses.replace(ports, config=ports.config.model_copy(update={"threads": threads, "batch_rows": 7}))
    table = frame()
    source = upload(ports, f"data.{fmt}", encode(table, fmt))

    job = run(ports, ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}, id_columns=["id"]))

    assert job["state"] == "completed", job
    assert job["ranges"]["total"] >= 3, "the input should have been split for this test to mean anything"
    output = read_output(ports, job)
    label, probabilities = expected(model_bytes, table)
    assert output.column_names == ["id", "prediction", "probabilities_0", "probabilities_1"]
    assert output.column("id").to_pylist() == table.column("id").to_pylist()
    np.testing.assert_array_equal(output.column("prediction").to_numpy(), label)
    np.testing.assert_allclose(output.column("probabilities_1").to_numpy(), probabilities[:, 1], rtol=1e-6)
    assert job["format"] == ("parquet" if fmt == "jsonl" else fmt)
    assert manifest(ports, job)["rows"] == ROWS


def test_a_parquet_row_group_too_big_to_fetch_ahead_is_streamed_and_scored_whole(
    ports: Scoring, model_bytes: bytes
) -> None:
    table = frame()
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROWS, compression="none")
    group = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata.row_group(0)
    size = sum(group.column(i).total_compressed_size for i in range(group.num_columns))
    assert size > 4 * ports.config.chunk_bytes, "the row group should exceed the fetch-ahead cap"
    source = upload(ports, "one-group.parquet", sink.getvalue())

    job = run(ports, ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}, id_columns=["id"]))

    assert job["state"] == "completed", job
    output = read_output(ports, job)
    label, probabilities = expected(model_bytes, table)
    assert output.column("id").to_pylist() == table.column("id").to_pylist()
    np.testing.assert_array_equal(output.column("prediction").to_numpy(), label)
    np.testing.assert_allclose(output.column("probabilities_1").to_numpy(), probabilities[:, 1], rtol=1e-6)


def test_bad_rows_go_to_the_errors_file_with_their_row_numbers(ports: Scoring) -> None:
    lines = encode(frame(200), "csv").decode().splitlines(keepends=True)
    lines[5] = '"r4",0.1,abc,0.3,0.4,0.5\n'  # data row 5: a feature that is not a number
    lines[150] = '"r149",0.1,0.2\n'  # data row 150: too few fields
    source = upload(ports, "bad.csv", "".join(lines).encode())
    ports = Scoring(ports.blobs, ports.state, ports.queue, ports.config.model_copy(update={"max_error_share": 0.05}))

    job = run(ports, ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}, id_columns=["id"]))

    assert job["state"] == "completed", job
    output = read_output(ports, job)
    assert output.num_rows == 198
    assert "r4" not in output.column("id").to_pylist()
    errors_name = manifest(ports, job)["errors_file"]
    errors = pacsv.read_csv(
        io.BytesIO(ports.blobs.get_blob_client(ports.config.output_container, errors_name).download_blob().readall())
    )
    assert errors.column("row").to_pylist() == [5, 150]
    assert "'f1' is not a number" in errors.column("reason")[0].as_py()


def test_too_many_bad_rows_fail_the_job_and_leave_no_output(ports: Scoring) -> None:
    lines = encode(frame(100), "csv").decode().splitlines(keepends=True)
    for row in range(1, 11):
        lines[row] = f'"r{row}",x,0,0,0,0\n'
    source = upload(ports, "worse.csv", "".join(lines).encode())

    job = run(ports, ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}))

    assert job["state"] == "failed"
    assert "10 of 100 rows could not be parsed" in job["error"]
    output = job["output"].split("/", 1)[1]
    assert not ports.blobs.get_blob_client(ports.config.output_container, output).exists()
    assert manifest(ports, job)["state"] == "failed"


def test_a_missing_feature_column_fails_the_job_naming_it(ports: Scoring) -> None:
    source = upload(ports, "short.csv", encode(frame(50).drop_columns(["f3"]), "csv"))

    job = run(ports, ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}))

    assert job["state"] == "failed"
    assert "'f3'" in job["error"] and "missing" in job["error"]
    with pytest.raises(InvalidInput, match="'f3'"):
        submit(ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}, features=FEATURES), ports)


def test_a_text_feature_column_in_parquet_fails_the_job_naming_it(ports: Scoring) -> None:
    table = frame(50)
    table = table.set_column(2, "f1", pa.array(["x"] * 50))
    source = upload(ports, "typed.parquet", encode(table, "parquet"))

    job = run(ports, ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}))

    assert job["state"] == "failed"
    assert "'f1' has type string" in job["error"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_file_without_rows_gives_an_empty_output(ports: Scoring, fmt: str) -> None:
    source = upload(ports, f"empty.{fmt}", encode(frame(0), fmt))

    job = run(ports, ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}, id_columns=["id"]))

    assert job["state"] == "completed", job
    output = read_output(ports, job)
    assert output.num_rows == 0
    assert output.column_names == ["id", "prediction", "probabilities_0", "probabilities_1"]


def test_a_repeated_submission_finds_the_same_job(ports: Scoring) -> None:
    source = upload(ports, "again.csv", encode(frame(10), "csv"))
    request = ScoringRequest(input=source, model={"blob": "models/gbt.onnx"})

    first, second = submit(request, ports), submit(request, ports)

    assert first["job_id"] == second["job_id"]
    assert ports.queue.client.get_queue_properties().approximate_message_count == first["ranges"]["total"]


def workers(azurite: Azurite, settings: Settings, ports: Scoring, count: int) -> list[subprocess.Popen[bytes]]:
    environment = os.environ | {
        "AzureWebJobsStorage": azurite.connection_string,
        "MLOPS_STATE_CONTAINER": settings.state_container,
        "MLOPS_SCORING_QUEUE": ports.config.queue,
        "MLOPS_SCORING_THREADS": "1",
        "MLOPS_SCORING_CHUNK_BYTES": str(ports.config.chunk_bytes),
        "MLOPS_SCORING_BLOCK_BYTES": str(ports.config.block_bytes),
        "MLOPS_SCORING_MODEL_CACHE": ports.config.model_cache,
    }
    command = [sys.executable, "-m", "shared.scoring.worker", "--visibility", "2", "--idle-exit", "2"]
    return [subprocess.Popen(command, cwd=ROOT, env=environment, stderr=subprocess.DEVNULL) for _ in range(count)]


def test_three_worker_processes_write_what_one_writes(azurite: Azurite, settings: Settings, ports: Scoring) -> None:
    data = encode(frame(), "csv")
    single = run(ports, ScoringRequest(input=upload(ports, "one.csv", data), model={"blob": "models/gbt.onnx"}))
    job = submit(ScoringRequest(input=upload(ports, "many.csv", data), model={"blob": "models/gbt.onnx"}), ports)

    for process in workers(azurite, settings, ports, 3):
        assert process.wait(timeout=60) == 0

    job = status(job["job_id"], ports) or {}
    assert job["state"] == "completed", job
    container = ports.blobs.get_container_client(ports.config.output_container)
    many = container.get_blob_client("many.csv").download_blob().readall()
    assert many == container.get_blob_client("one.csv").download_blob().readall()
    assert single["ranges"]["total"] >= 3


def test_a_worker_killed_mid_range_is_retried_and_the_output_is_whole(
    azurite: Azurite, settings: Settings, ports: Scoring, model_bytes: bytes
) -> None:
    table = frame(12_000)
    job = submit(
        ScoringRequest(input=upload(ports, "kill.csv", encode(table, "csv")), model={"blob": "models/gbt.onnx"}), ports
    )
    output = ports.blobs.get_blob_client(ports.config.output_container, "kill.csv")
    [victim] = workers(azurite, settings, ports, 1)
    wait_until(lambda: _has_staged_blocks(output), timeout=30, interval=0.01, what="the worker's first staged block")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    record = ports.state.get(JOBS, job["job_id"]) or {}
    assert len(record["done"]) < len(record["ranges"]), "the worker finished before it was killed"
    assert not output.exists(), "no output may be visible before the last range commits"

    for process in workers(azurite, settings, ports, 2):
        assert process.wait(timeout=60) == 0

    assert (status(job["job_id"], ports) or {})["state"] == "completed"
    scored = pacsv.read_csv(io.BytesIO(output.download_blob().readall()))
    label, _ = expected(model_bytes, table)
    np.testing.assert_array_equal(scored.column("prediction").to_numpy(), label)


def _has_staged_blocks(blob: object) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        _, uncommitted = blob.get_block_list("uncommitted")  # type: ignore[attr-defined]
    except ResourceNotFoundError:
        return False
    return bool(uncommitted)


def test_a_blob_that_cannot_be_scored_gets_a_failed_job_with_the_reason(ports: Scoring) -> None:
    upload(ports, "loose.csv", encode(frame(5), "csv"))

    job = submit_blob(ports.config.input_container, "loose.csv", ports)

    assert job["state"] == "failed"
    assert "<location>/<model>/<version>/" in job["error"]
    assert (status(job["job_id"], ports) or {})["error"] == job["error"]


def test_jobs_read_only_the_input_container_and_never_write_into_it(ports: Scoring) -> None:
    source = upload(ports, "guarded.csv", encode(frame(5), "csv"))
    model = {"blob": "models/gbt.onnx"}

    with pytest.raises(InvalidInput, match=r"output\.container"):
        submit(ScoringRequest(input=source, model=model, output={"container": ports.config.input_container}), ports)
    with pytest.raises(InvalidInput, match="input: must be in container"):
        submit(ScoringRequest(input="models/gbt.onnx.csv", model=model), ports)


def test_a_csv_whose_header_is_not_utf8_is_refused_naming_the_header(ports: Scoring) -> None:
    source = upload(ports, "latin1.csv", "id,température,f1\nr1,1.0,2.0\n".encode("latin-1"))

    with pytest.raises(InvalidInput, match=r"latin1.csv'?: the header \(first line\) is not UTF-8 text \(byte 0xe9"):
        submit(ScoringRequest(input=source, model={"blob": "models/gbt.onnx"}), ports)


def test_any_job_id_looked_up_that_no_job_has_is_none(ports: Scoring) -> None:
    for job_id in ["x..y", "../records/x", "score-" + "0" * 24, "rejected-" + "f" * 24, "\ud800"]:
        assert status(job_id, ports) is None
