"""Batch-scoring benchmark: end-to-end rows/s against the ONNX Runtime limit and a pandas script.

    python -m benchmarks.scoring                 # 1 M rows, both models, CSV and Parquet
    python -m benchmarks.scoring --memory-rows 5000000

Everything is measured in this one run, on one Azurite: a gradient-boosted ensemble
(100 trees, depth 3) and an MLP (30-256-256-2) made here with sklearn + skl2onnx,
on a float file of 30 features. For each model and format it prints

- limit: `session.run` on the same rows preloaded as one float32 C-contiguous matrix,
  with the engine's own session (`shared.scoring.session.load_model`, same options)
  and threads (`--threads` batches at once), the engine's batch size: the best of
  three passes after a warm-up pass;
- ceiling: the most any pipeline could reach on these cores, with Azurite on them too:
  cores / the CPU per row of the floor, the least work there is to do (GET the input
  into one buffer, decode it at once into one float32 matrix, score it as the limit does,
  encode the output, PUT it in 8 MiB blocks), plus the CPU Azurite spends serving it;
  the floor's steps run one after another in one process, the run with the median CPU;
- engine: `shared.scoring` from Azurite to Azurite (submit, score every range, commit),
  timed from submit to the committed output; the median of `--repeat` runs;
- pandas: the usual batch-endpoint script (read the whole file, one `session.run`, write);
  the median of `--repeat` runs;

and the ratios engine/limit and engine/pandas, each beside the ceiling's, and
engine/ceiling; then the CPU of the floor's steps, of the engine and of Azurite per
million rows, and how busy the cores were during the engine's runs. While the limit keeps every core on `session.run`,
end to end the same cores also download, decode, encode, upload, and run Azurite: the
ceiling shows how much of the limit that leaves, and engine/ceiling how close the engine
comes to it. Each measurement runs in its own process, which reports its peak RSS
(VmHWM). Figures depend on the machine and what else runs on it; compare the ratios,
which come from one run.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = [f"x{i}" for i in range(30)]
ROOT = Path(__file__).resolve().parent.parent
INPUT, OUTPUT, MODELS = "scoring-input", "scoring-output", "models"


def make_models(folder: Path) -> dict[str, Path]:
    """Train both models on a sample and save them as ONNX files that name their features."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] - x[:, 3] > 0).astype(np.int64)
    models = {
        "gbt": GradientBoostingClassifier(n_estimators=100, max_depth=3).fit(x, y),
        "mlp": MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=5).fit(x, y),
    }
    paths = {}
    for name, model in models.items():
        onnx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
        entry = onnx.metadata_props.add()
        entry.key, entry.value = "feature_names", json.dumps(FEATURES)
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(onnx.SerializeToString())
    return paths


def make_inputs(folder: Path, rows: int, formats: list[str]) -> dict[str, Path]:
    """Write the input files chunk by chunk (so that 5 M rows need no 5 M-row table)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.float32()) for name in FEATURES])
    paths = {fmt: folder / f"data-{rows}.{fmt}" for fmt in formats}
    writers = {}
    if "csv" in paths:
        writers["csv"] = pacsv.CSVWriter(str(paths["csv"]), schema)
    if "parquet" in paths:
        writers["parquet"] = pq.ParquetWriter(str(paths["parquet"]), schema, compression="snappy")
    rng = np.random.default_rng(1)
    for start in range(0, rows, 131_072):
        values = rng.normal(size=(min(131_072, rows - start), len(FEATURES))).astype(np.float32)
        table = pa.table([values[:, j] for j in range(len(FEATURES))], schema=schema)
        for writer in writers.values():
            writer.write_table(table)
    for writer in writers.values():
        writer.close()
    return paths


def peak_rss_mb() -> float:
    """This process's peak RSS. `ru_maxrss` survives exec (a child would report its parent's peak): use VmHWM."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds that process `pid` (all its threads) has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Children: one measurement each, printing one JSON line --------------------------------


def child_limit(model: str, data: str, threads: int, batch_rows: int) -> dict:
    """`session.run` throughput on the rows preloaded as float32 C-contiguous batches, `threads` at once."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    from shared.scoring.session import load_model

    table = pq.read_table(data)
    matrix = np.ascontiguousarray(np.column_stack([table.column(name).to_numpy() for name in FEATURES]), np.float32)
    del table
    loaded = load_model(model)
    batches = [matrix[start : start + batch_rows] for start in range(0, len(matrix), batch_rows)]
    passes = []
    with ThreadPoolExecutor(threads) as runs:
        # The first pass grows each thread's buffers; the limit is the best of the passes after it.
        for _ in range(4):
            started, cpu = time.perf_counter(), time.process_time()
            for _ in runs.map(loaded.run, batches):
                pass
            passes.append((time.perf_counter() - started, time.process_time() - cpu))
    seconds = min(wall for wall, _ in passes[1:])
    cpu = min(cpu for _, cpu in passes[1:])  # the least CPU a pass took: other work on the machine only adds to it
    return {"rows_per_second": len(matrix) / seconds, "seconds": seconds, "cpu": cpu}


def child_engine(source: str, model_blob: str, output: str) -> dict:
    """Submit a job through `shared.scoring` and score every range in this process.

    Timed from a warm worker, as the pandas script is: modules imported and the model's
    session loaded (what a Functions worker has cached after its first job), from
    submit to the job's `finished` time (output committed).
    """
    from datetime import datetime

    from shared.scoring.jobs import Scoring, status, submit
    from shared.scoring.request import ScoringRequest
    from shared.scoring.session import load_model, model_file
    from shared.scoring.worker import drain
    from shared.settings import get_settings

    ports = Scoring.from_settings(get_settings())  # first: starting scoring tunes the allocators before pyarrow
    for module in ("pyarrow.csv", "pyarrow.parquet"):  # loaded before the clock, as a warm worker has them
        importlib.import_module(module)
    # pyarrow imports pandas on its first conversion from NumPy where pandas is installed (here, for the
    # pandas script; never in Azure): ~0.7 s of CPU a worker pays once, not per job, so before the clock.
    importlib.import_module("pyarrow").array(np.zeros(1))

    blobs, config = ports.blobs, ports.config
    # A new output per run: the same request would find the job that is already done.
    output = f"{uuid.uuid4().hex[:8]}-{output}"
    request = ScoringRequest(input=source, model={"blob": model_blob}, output={"path": output})
    cache = Path(config.model_cache)
    load_model(str(model_file(request.model, None, blobs, cache)))
    steps = step_timer()
    collecting = gc_timer()
    started, cpu, usage = time.time(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    job = submit(request, ports)
    drain(ports, visibility=300, idle_exit=0.2)
    cpu, after = time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF)
    gc.callbacks.remove(collecting)
    job = status(job["job_id"], ports) or {}
    seconds = datetime.fromisoformat(job["finished"]).timestamp() - started if job.get("finished") else 0
    if job.get("state") != "completed" or seconds <= 0:
        raise SystemExit(f"job did not complete after submit: {job}")
    written = sum(blob.size for blob in blobs.get_container_client(config.output_container).list_blobs(output))
    return {
        "rows_per_second": job["rows_done"] / seconds,
        "seconds": seconds,
        "cpu": cpu,
        "system_cpu": after.ru_stime - usage.ru_stime,  # mostly first touches of new pages (page faults)
        "page_faults": after.ru_minflt - usage.ru_minflt,
        "gc_seconds": collecting.seconds,
        "steps": dict(steps),
        "gc_collections": collecting.collections,
        "ranges": job["ranges"]["total"],
        "output_bytes": written,
    }


STEPS = {
    "GET": ("read_lines_range", "read_spans"),
    "parse": ("parse_csv", "parse_jsonl", "parquet_batches"),
    "copy": ("to_matrix",),
    "write": ("open_writer",),
}
"""The engine's steps whose CPU `step_timer` counts, by the names `shared.scoring.pipeline` calls them by."""


def step_timer() -> dict[str, float]:
    """Count the CPU of each of the engine's steps on the thread that runs it (`time.thread_time`).

    Wraps the functions the pipeline calls (and `LoadedModel.run`: "run"), so any checkout's
    engine is counted the same way; generators are counted item by item, a writer per
    `write_table`. What runs on pyarrow's own threads (a Parquet decode with its threads)
    is counted in none of them, only in the process's CPU ("rest").
    """
    import threading

    from shared.scoring import pipeline, session

    spent: dict[str, float] = dict.fromkeys([*STEPS, "run"], 0.0)
    lock = threading.Lock()

    def add(step: str, since: float) -> None:
        with lock:
            spent[step] += time.thread_time() - since

    def counted(step: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                result = function(*args, **kwargs)
            finally:
                add(step, started)
            if hasattr(result, "__next__"):
                return _counted_items(step, result, add)
            if hasattr(result, "write_table"):
                return _CountedWriter(result, step, add)
            return result

        return call

    for step, names in STEPS.items():
        for name in names:
            if hasattr(pipeline, name):
                setattr(pipeline, name, counted(step, getattr(pipeline, name)))
    session.LoadedModel.run = counted("run", session.LoadedModel.run)  # type: ignore[method-assign]
    return spent


def _counted_items(step: str, items: Any, add: Any) -> Any:
    while True:
        started = time.thread_time()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            add(step, started)
        yield item


@dataclass
class _CountedWriter:
    writer: Any
    step: str
    add: Any

    def write_table(self, table: Any) -> None:
        started = time.thread_time()
        self.writer.write_table(table)
        self.add(self.step, started)

    def close(self) -> None:
        started = time.thread_time()
        self.writer.close()
        self.add(self.step, started)


def gc_timer() -> Any:
    """A `gc.callbacks` entry that adds up the wall time and number of the collections from now on."""

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            callback.started = time.perf_counter()  # type: ignore[attr-defined]
        else:
            callback.seconds += time.perf_counter() - callback.started  # type: ignore[attr-defined]
            callback.collections[info["generation"]] += 1  # type: ignore[attr-defined]

    callback.seconds, callback.collections = 0.0, [0, 0, 0]  # type: ignore[attr-defined]
    gc.callbacks.append(callback)
    return callback


def child_pandas(source: str, model: str, threads: int) -> dict:
    """The usual batch-endpoint script: read the whole file, score it at once, write it back."""
    import onnxruntime as ort
    import pandas as pd
    from azure.storage.blob import BlobServiceClient

    from shared.settings import get_settings

    blobs = BlobServiceClient.from_connection_string(get_settings().storage_connection or "")
    container, name = source.split("/", 1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    data = io.BytesIO(blobs.get_blob_client(container, name).download_blob(max_concurrency=2).readall())
    frame = pd.read_parquet(data) if name.endswith(".parquet") else pd.read_csv(data)
    matrix = frame[FEATURES].to_numpy(dtype=np.float32)
    label, probabilities = session.run(None, {session.get_inputs()[0].name: matrix})
    frame["prediction"], frame["probability"] = label, probabilities[:, 1]
    out = io.BytesIO()
    if name.endswith(".parquet"):
        frame[["prediction", "probability"]].to_parquet(out)
    else:
        frame[["prediction", "probability"]].to_csv(out, index=False)
    blobs.get_blob_client(OUTPUT, f"pandas-{uuid.uuid4().hex}").upload_blob(out.getvalue(), max_concurrency=2)
    seconds = time.perf_counter() - started
    return {"rows_per_second": len(frame) / seconds, "seconds": seconds}


def child_floor(source: str, model: str, threads: int, batch_rows: int, azurite_pid: int) -> dict:
    """The least work any pipeline does here, one step after another, with the CPU time of
    each step, in this process and in Azurite.

    GET the input into one buffer (as the engine GETs a span), decode it at once into one
    float32 matrix, score it as the limit does, encode the output as the engine would, PUT
    it in 8 MiB blocks with MD5. The second of two passes counts: in a fresh process, first
    touching memory costs this VM about 1.8 µs per page (0.3 s for the input alone).
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.parquet as pq
    from azure.storage.blob import BlobServiceClient

    from shared.scoring.blobio import BLOCK_BYTES, BlockSink, commit_blocks, read_spans
    from shared.scoring.formats import open_writer, parse_csv, to_matrix
    from shared.scoring.session import load_model
    from shared.settings import get_settings

    blobs = BlobServiceClient.from_connection_string(get_settings().storage_connection or "")
    container, name = source.split("/", 1)
    blob, fmt = blobs.get_blob_client(container, name), name.rsplit(".", 1)[1]
    size = blob.get_blob_properties().size
    loaded = load_model(model)
    steps: dict[str, dict[str, float]] = {}

    def timed(step: str, work: Any, *inputs: Any) -> Any:
        wall, cpu, azurite = time.perf_counter(), time.process_time(), cpu_seconds(azurite_pid)
        result = work(*inputs)
        steps[step] = {
            "seconds": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "azurite": cpu_seconds(azurite_pid) - azurite,
        }
        return result

    def download() -> memoryview:
        return read_spans(blob, [(0, size)])[0]

    def decode(data: memoryview) -> np.ndarray:
        if fmt == "parquet":
            table = pq.read_table(pa.py_buffer(data), columns=FEATURES)
        else:  # as the engine parses (the cheapest way pyarrow has: float64, one thread), all at once
            body = bytes(data[: 1 << 16]).find(b"\n") + 1
            table = parse_csv(data[body:], FEATURES, FEATURES, [], first_row=1)[0]
        return to_matrix(table, FEATURES, np.dtype(np.float32))

    def score(matrix: np.ndarray) -> list[np.ndarray]:
        batches = [matrix[start : start + batch_rows] for start in range(0, len(matrix), batch_rows)]
        with ThreadPoolExecutor(threads) as runs:
            scored = list(runs.map(lambda batch: loaded.output_columns(loaded.run(batch)), batches))
        return [np.concatenate(columns) for columns in zip(*scored, strict=True)]

    def encode(outputs: list[np.ndarray]) -> bytes:
        out, table = io.BytesIO(), pa.table(outputs, schema=loaded.output_schema())
        writer: Any = open_writer(fmt, out, table.schema, header=True)
        writer.write_table(table)
        writer.close()
        return out.getvalue()

    def upload(encoded: bytes) -> None:
        target = blobs.get_blob_client(OUTPUT, f"floor-{uuid.uuid4().hex}")
        sink = BlockSink(target, part=0)
        for offset in range(0, len(encoded), BLOCK_BYTES):  # the sink stages whatever it holds once full
            sink.write(encoded[offset : offset + BLOCK_BYTES])
        sink.close()
        commit_blocks(target, sink.block_ids, "application/octet-stream")

    for _ in range(2):
        matrix = timed("decode", decode, timed("download", download))
        encoded = timed("encode", encode, timed("score", score, matrix))
        timed("upload", upload, encoded)
    return {"rows": len(matrix), "input_bytes": size, "output_bytes": len(encoded), "steps": steps}


def child(args: argparse.Namespace) -> None:
    if args.child == "limit":
        result = child_limit(args.model, args.data, args.threads, args.batch_rows)
    elif args.child == "floor":
        result = child_floor(args.source, args.model, args.threads, args.batch_rows, int(args.azurite_pid))
    elif args.child == "engine":
        result = child_engine(args.source, args.model_blob, args.output)
    else:
        result = child_pandas(args.source, args.model, args.threads)
    print(json.dumps(result | {"peak_rss_mb": peak_rss_mb()}))


# The run -------------------------------------------------------------------------------


@dataclass
class Children:
    """Runs each measurement in a fresh process and adds the CPU that Azurite spent meanwhile."""

    environment: dict[str, str]
    azurite_pid: int
    code: Path = ROOT

    def run(self, *arguments: str) -> dict:
        """This file's child in a fresh process whose `shared` (the code measured) is `self.code`'s."""
        start = f"import runpy; runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')"
        command = [sys.executable, "-c", start, *arguments]
        before = cpu_seconds(self.azurite_pid)
        done = subprocess.run(
            command, cwd=self.code, env=self.environment, capture_output=True, text=True, check=False
        )
        azurite = cpu_seconds(self.azurite_pid) - before
        if done.returncode:
            raise SystemExit(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1]) | {"azurite_cpu": azurite}

    def median(self, times: int, key: Any, *arguments: str) -> dict:
        """The run with the median `key` of `times` runs (this machine's figures vary ~10% run to run)."""
        runs = sorted((self.run(*arguments) for _ in range(times)), key=key)
        return runs[len(runs) // 2] | {"peak_rss_mb": max(run["peak_rss_mb"] for run in runs)}


def by_rate(run: dict) -> float:
    return run["rows_per_second"]


def by_engine_cpu(run: dict) -> float:
    return run["cpu"]


def by_cpu(run: dict) -> float:
    return sum(step["cpu"] + step["azurite"] for step in run["steps"].values())


def main() -> None:
    from azure.storage.blob import BlobServiceClient

    from devhost.azurite import running_azurite
    from shared.scoring.session import cpu_count

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=0, help="also measure peak RSS of the engine at this size")
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--models", default="gbt,mlp")
    parser.add_argument("--threads", type=int, default=cpu_count())
    parser.add_argument("--batch-rows", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement of engine, floor and pandas")
    parser.add_argument("--before", type=Path, help="a checkout of the code before a change: its engine runs too")
    parser.add_argument(
        "--engine-only", action="store_true", help="only the limit and the engine (and --before's): CPU ratios, fast"
    )
    parser.add_argument("--child", choices=["limit", "floor", "engine", "pandas"], help=argparse.SUPPRESS)
    for option in ("--model", "--data", "--source", "--model-blob", "--output", "--azurite-pid"):
        parser.add_argument(option, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    formats, model_names, cores = args.formats.split(","), args.models.split(","), cpu_count()
    with tempfile.TemporaryDirectory(prefix="scoring-bench-") as tmp, running_azurite(f"{tmp}/azurite") as azurite:
        folder = Path(tmp)
        assert azurite.process is not None
        children = Children(
            os.environ
            | {
                "AzureWebJobsStorage": azurite.connection_string,
                "MLOPS_SCORING_THREADS": str(args.threads),
                "MLOPS_SCORING_BATCH_ROWS": str(args.batch_rows),
                "MLOPS_SCORING_MODEL_CACHE": str(folder / "cache"),
            },
            azurite.process.pid,
        )
        before_children = Children(children.environment, children.azurite_pid, args.before) if args.before else None
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        for container in (INPUT, OUTPUT, MODELS):
            blobs.create_container(container)
        models = make_models(folder)
        for name, path in models.items():
            blobs.get_blob_client(MODELS, f"{name}.onnx").upload_blob(path.read_bytes())
        sizes = sorted({args.rows, args.memory_rows} - {0})
        inputs = {rows: make_inputs(folder, rows, sorted(set(formats) | {"parquet"})) for rows in sizes}
        for paths in inputs.values():
            for path in paths.values():
                with path.open("rb") as file:
                    blobs.get_blob_client(INPUT, path.name).upload_blob(file, max_concurrency=2)
        print(f"{args.rows:,} rows x {len(FEATURES)} float features; {args.threads} scoring threads; {cores} cores")
        print("ratios: the engine's, and in brackets the ceiling's (the most any pipeline could reach here)")
        header = f"{'model':5} {'format':8} {'limit r/s':>11} {'ceiling r/s':>11} {'engine r/s':>11} "
        header += f"{'pandas r/s':>11} {'÷ limit':>13} {'÷ pandas':>13} {'eng/ceil':>8} {'cpu/run':>7} "
        print(header + f"{'engine MB':>9} {'pandas MB':>9}")
        measured = []
        for name in model_names:
            model, data = str(models[name]), str(inputs[args.rows]["parquet"])
            threads = ("--threads", str(args.threads), "--batch-rows", str(args.batch_rows))
            limit = children.run("--child", "limit", "--model", model, "--data", data, *threads)
            for fmt in formats:
                source = f"{INPUT}/{inputs[args.rows][fmt].name}"
                engine_args = (
                    "--child", "engine", "--source", source, "--model-blob", f"{MODELS}/{name}.onnx",
                    "--output", f"{name}.{fmt}",
                )  # fmt: skip
                # --engine-only judges CPU: its run with the median CPU, not the median rate.
                key = by_engine_cpu if args.engine_only else by_rate
                engine = children.median(args.repeat, key, *engine_args)
                before = before_children.median(args.repeat, key, *engine_args) if before_children else None
                if args.engine_only:
                    print(engine_line(name, fmt, limit, engine, before, args.rows), flush=True)
                    continue
                floor = children.median(
                    args.repeat, by_cpu, "--child", "floor", "--source", source, "--model", model, *threads,
                    "--azurite-pid", str(children.azurite_pid),
                )  # fmt: skip
                pandas = children.median(
                    args.repeat, by_rate, "--child", "pandas", "--source", source, "--model", model, *threads
                )
                rows, rate = args.rows, engine["rows_per_second"]
                ceiling = rows * cores / by_cpu(floor)
                limit_rate, pandas_rate = limit["rows_per_second"], pandas["rows_per_second"]
                print(
                    f"{name:5} {fmt:8} {limit_rate:11,.0f} {ceiling:11,.0f} {rate:11,.0f} {pandas_rate:11,.0f} "
                    f"{rate / limit_rate:6.2f} ({ceiling / limit_rate:4.2f}) "
                    f"{rate / pandas_rate:6.2f} ({ceiling / pandas_rate:4.2f}) {rate / ceiling:8.2f} "
                    f"{engine['cpu'] / limit['cpu']:7.2f} {engine['peak_rss_mb']:9.0f} {pandas['peak_rss_mb']:9.0f}",
                    flush=True,
                )
                measured.append((name, fmt, floor, engine, before, limit, ceiling))
        per = 1_000_000 / args.rows
        print("\ncpu/run: the engine's CPU per row over session.run's (the limit's passes), in this run")
        print("by CPU: the floor's CPU per row over the engine's and Azurite's: eng/ceil if the cores were all its own")
        print("CPU, core-seconds per 1 M rows; the floor's steps run one after another (MB/s: its GETs and PUTs)")
        steps = ["download", "decode", "score", "encode", "upload"]
        print(
            f"{'model':5} {'format':8} " + " ".join(f"{step:>8}" for step in steps)
            + f" {'Azurite':>8} {'floor':>7} | {'engine':>7} {'Azurite':>8} {'by CPU':>6} {'busy':>5} {'faults':>7}"
            + f" | {'GET MB/s':>8} {'PUT MB/s':>8}"
        )  # fmt: skip
        for name, fmt, floor, engine, _, _, _ in measured:
            spent = floor["steps"]
            azurite = sum(step["azurite"] for step in spent.values())
            get_rate = floor["input_bytes"] / 2**20 / spent["download"]["seconds"]
            put_rate = floor["output_bytes"] / 2**20 / spent["upload"]["seconds"]
            print(
                f"{name:5} {fmt:8} " + " ".join(f"{spent[step]['cpu'] * per:8.2f}" for step in steps)
                + f" {azurite * per:8.2f} {by_cpu(floor) * per:7.2f} | {engine['cpu'] * per:7.2f}"
                f" {engine['azurite_cpu'] * per:8.2f} {by_cpu(floor) / (engine['cpu'] + engine['azurite_cpu']):6.2f}"
                f" {busy(engine, cores):5.0%} {engine['page_faults'] * per:7,.0f}"
                f" | {get_rate:8,.0f} {put_rate:8,.0f}"
            )  # fmt: skip
        if before_children:
            print(f"\nbefore -> after, measured in this run (before: the engine of {args.before})")
            print(
                f"{'model':5} {'format':8} {'engine r/s':>21} {'eng/ceil':>12} {'cpu/run':>12} "
                f"{'CPU s/M rows':>13} {'faults/M rows':>17} {'peak MB':>11}"
            )
            for name, fmt, _, engine, old, limit, ceiling in measured:
                assert old is not None
                print(
                    f"{name:5} {fmt:8} {pair(old, engine, 'rows_per_second', 1, ',.0f', 8):>21} "
                    f"{old['rows_per_second'] / ceiling:4.2f} -> {engine['rows_per_second'] / ceiling:4.2f} "
                    f"{old['cpu'] / limit['cpu']:4.2f} -> {engine['cpu'] / limit['cpu']:4.2f} "
                    f"{pair(old, engine, 'cpu', per, '.2f', 5):>13} "
                    f"{pair(old, engine, 'page_faults', per, ',.0f', 7):>17} "
                    f"{pair(old, engine, 'peak_rss_mb', 1, '.0f', 4):>11}"
                )
        if args.memory_rows:
            print(f"\npeak RSS of the engine (gbt), MB: rows -> {' / '.join(formats)}")
            for rows in sizes:
                figures = []
                for fmt in formats:
                    engine = children.run(
                        "--child", "engine", "--source", f"{INPUT}/{inputs[rows][fmt].name}",
                        "--model-blob", f"{MODELS}/gbt.onnx", "--output", f"mem-{rows}.{fmt}",
                    )  # fmt: skip
                    figures.append(f"{engine['peak_rss_mb']:.0f} ({engine['rows_per_second']:,.0f} r/s)")
                print(f"{rows:>10,} -> {' / '.join(figures)}", flush=True)


def engine_line(name: str, fmt: str, limit: dict, engine: dict, before: dict | None, rows: int) -> str:
    """One line of `--engine-only`: CPU per million rows, cpu/run, page faults and peak RSS (before -> after)."""
    per = 1_000_000 / rows
    figures = [("cpu/run", "cpu", 1 / limit["cpu"], ".2f"), ("CPU s/M rows", "cpu", per, ".2f")]
    figures += [("system s/M", "system_cpu", per, ".2f"), ("faults/M rows", "page_faults", per, ",.0f")]
    figures += [("peak MB", "peak_rss_mb", 1, ".0f"), ("r/s", "rows_per_second", 1, ",.0f")]
    figures += [("gc s/M rows", "gc_seconds", per, ".3f")]
    shown = [
        f"{label} {before[key] * scale:{form}} -> {engine[key] * scale:{form}}"
        if before
        else f"{label} {engine[key] * scale:{form}}"
        for label, key, scale, form in figures
    ]
    line = f"{name:5} {fmt:8} run {limit['cpu'] * per:.2f} s/M rows; " + "; ".join(shown)
    steps = [
        f"{step} {step_line(before, step, per) + ' -> ' if before else ''}{step_line(engine, step, per)}"
        for step in [*STEPS, "run", "rest"]
    ]
    return f"{line}\n{'':15}steps, CPU s/M rows: " + ", ".join(steps)


def step_line(engine: dict, step: str, per: float) -> str:
    """One step's CPU per million rows; "rest" is the process's CPU in no counted step."""
    steps = engine.get("steps", {})
    spent = engine["cpu"] - sum(steps.values()) if step == "rest" else steps.get(step, 0.0)
    return f"{spent * per:.2f}"


def pair(old: dict, new: dict, key: str, scale: float, form: str, width: int) -> str:
    return f"{old[key] * scale:{width}{form}} -> {new[key] * scale:{width}{form}}"


def busy(engine: dict, cores: int) -> float:
    """How busy the cores were while the engine ran (its CPU and Azurite's over wall time x cores)."""
    return (engine["cpu"] + engine["azurite_cpu"]) / (engine["seconds"] * cores)


if __name__ == "__main__":
    main()
