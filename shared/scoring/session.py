"""ONNX models: where their files come from, one ONNX Runtime session per process, threads.

A model is downloaded once into a local cache folder (atomically, so concurrent
processes share it) and loaded once per process. ONNX Runtime's default thread pool
sizes itself from the host's cores, not the container's CPU quota, and two processes
with default pools each lose ~40% to oversubscription. So the session runs on one
thread, and scoring runs `cores / worker processes` batches at once on it
(`default_threads`): separate batches in parallel scale better than one batch split
across intra-op threads (on 2 cores, 1.04 M rows/s against 0.83 M for the benchmark's
tree ensemble), and no thread waits at a barrier while a core is busy parsing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.scoring.errors import InvalidInput
from shared.scoring.request import ModelRef, OnnxBlob, RegisteredModel

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from azure.storage.blob import BlobServiceClient

    from shared.domain.ports import MLPlatform

FEATURE_NAMES_KEY = "feature_names"


@dataclass(frozen=True)
class OutputColumn:
    """One output column: from ONNX output `source`, column `index` of it (None for a vector)."""

    name: str
    source: str
    index: int | None
    dtype: Any


@dataclass(frozen=True)
class LoadedModel:
    session: Any
    input_name: str
    input_dtype: np.dtype
    n_features: int
    feature_names: list[str] | None
    outputs: list[OutputColumn]

    def run(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Score one batch; every output as a NumPy array keyed by its ONNX name."""
        names = sorted({column.source for column in self.outputs})
        values = self.session.run(names, {self.input_name: matrix})
        return {name: _as_array(value) for name, value in zip(names, values, strict=True)}

    def output_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([(column.name, pa.from_numpy_dtype(column.dtype)) for column in self.outputs])

    def output_columns(self, results: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [
            results[column.source] if column.index is None else results[column.source][:, column.index]
            for column in self.outputs
        ]


def cpu_count() -> int:
    """Cores this process may use: affinity and the cgroup CPU quota, whichever is smaller."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def default_threads() -> int:
    """Batches a process scores at once, so that worker processes x threads <= cores."""
    processes = int(os.environ.get("FUNCTIONS_WORKER_PROCESS_COUNT", "1") or 1)
    return max(1, cpu_count() // max(processes, 1))


@functools.cache
def load_model(path: str) -> LoadedModel:
    """The process's single-threaded session for a model file (cached: loading costs far more than a batch).

    `session.run` is thread-safe: callers score several batches at once on it.
    """
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own untyped errors for a bad file
        raise InvalidInput(f"model {Path(path).name!r} is not a valid ONNX model: {error}") from error
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type not in ("tensor(float)", "tensor(double)") or len(inputs[0].shape) != 2:
        found = [(item.name, item.type, item.shape) for item in inputs]
        raise InvalidInput(f"model must have one float input of shape [batch, features], found {found}")
    model_input = inputs[0]
    dtype = np.dtype(np.float32 if model_input.type == "tensor(float)" else np.float64)
    width = model_input.shape[1]
    if not isinstance(width, int):
        raise InvalidInput(f"model input {model_input.name!r} does not fix its number of features: {model_input.shape}")
    meta = session.get_modelmeta().custom_metadata_map
    names = _feature_names(meta.get(FEATURE_NAMES_KEY))
    if names is not None and len(names) != width:
        raise InvalidInput(f"model metadata names {len(names)} features but its input takes {width}")
    probe = session.run(None, {model_input.name: np.zeros((2, width), dtype=dtype)})
    outputs = _output_columns([item.name for item in session.get_outputs()], [_as_array(value) for value in probe])
    return LoadedModel(session, model_input.name, dtype, width, names, outputs)


def model_file(ref: ModelRef, platform: MLPlatform | None, blobs: BlobServiceClient, cache: Path) -> Path:
    """The local path of the model's ONNX file, downloading it on first use."""
    if isinstance(ref, RegisteredModel):
        if platform is None:
            raise InvalidInput("registered models need the ML platform, which is not configured here")
        folder = cache / "registered" / ref.location / ref.name / ref.version
        return _once(folder, lambda tmp: platform.download_model(platform.get_model(*ref.key()), tmp))
    return _once(cache / "blobs" / _blob_key(ref, blobs), lambda tmp: _download_blob(ref, blobs, tmp))


def _once(folder: Path, download: Any) -> Path:
    """Download into a temporary folder, then rename it into place (the first process wins)."""
    marker = folder / "model.json"
    if marker.exists():
        return folder / json.loads(marker.read_text())["file"]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".download-"))
    try:
        path = Path(download(tmp))
        (tmp / "model.json").write_text(json.dumps({"file": str(path.relative_to(tmp))}))
        try:
            tmp.rename(folder)
        except OSError:
            if not marker.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / json.loads(marker.read_text())["file"]


def _blob_key(ref: OnnxBlob, blobs: BlobServiceClient) -> str:
    container, name = ref.parts()
    etag = blobs.get_blob_client(container, name).get_blob_properties().etag
    return hashlib.sha256(f"{ref.blob}|{etag}".encode()).hexdigest()[:32]


def _download_blob(ref: OnnxBlob, blobs: BlobServiceClient, folder: Path) -> Path:
    container, name = ref.parts()
    path = folder / "model.onnx"
    with path.open("wb") as file:
        blobs.get_blob_client(container, name).download_blob(max_concurrency=2).readinto(file)
    return path


def _feature_names(value: str | None) -> list[str] | None:
    if not value:
        return None
    try:
        names = json.loads(value)
    except ValueError:
        names = [part.strip() for part in value.split(",")]
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise InvalidInput(f"model metadata {FEATURE_NAMES_KEY!r} must be a JSON list or comma-separated names")
    return names


def _output_columns(names: list[str], probes: list[np.ndarray]) -> list[OutputColumn]:
    """`prediction` for the first output, `<name>_<j>` for each column of a wider one (class probabilities)."""
    columns = []
    for position, (name, value) in enumerate(zip(names, probes, strict=True)):
        width = 1 if value.ndim == 1 else value.shape[1]
        if value.ndim > 2:
            raise InvalidInput(
                f"model output {name!r} has {value.ndim} dimensions; only vectors and matrices are scored"
            )
        if width == 1:
            label = "prediction" if position == 0 else name
            columns.append(OutputColumn(label, name, None if value.ndim == 1 else 0, value.dtype))
        else:
            columns.extend(OutputColumn(f"{name}_{j}", name, j, value.dtype) for j in range(width))
    return columns


def _as_array(value: object) -> np.ndarray:
    """ONNX outputs as arrays; a ZipMap output (a list of {class: probability}) becomes a matrix."""
    import numpy as np

    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = list(value[0])
        return np.array([[row[key] for key in keys] for row in value], dtype=np.float32)
    return np.asarray(value)
