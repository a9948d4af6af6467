"""Score one range in bounded memory, as a pipeline of threads: download -> parse -> score -> write.

Each stage is a generator and `prefetch` runs it on its own thread, at most `depth`
items ahead of the next stage. The stages overlap because what they spend their time
in releases the GIL (socket reads, pyarrow parsing, NumPy copies, ONNX Runtime): the
session scores one chunk, `threads` batches of it at once, while the next is parsed
and the one after it downloads, and the calling thread writes results to a sink that
stages blocks. Memory holds a few chunks at each stage, whatever the file size.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from shared.scoring.blobio import BlobReader, BlockSink, read_lines_range, read_spans
from shared.scoring.errors import InvalidInput, RowError
from shared.scoring.formats import (
    Format,
    check_columns,
    open_writer,
    parquet_batches,
    parquet_columns,
    parquet_spans,
    parse_csv,
    parse_jsonl,
    to_matrix,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from azure.storage.blob import BlobClient

    from shared.scoring.session import LoadedModel

T = TypeVar("T")


@dataclass
class Source:
    """The input blob of a job, pinned to the version (ETag) that was planned."""

    blob: BlobClient
    format: Format
    size: int
    etag: str
    info: dict[str, Any]
    where: str


@dataclass
class Chunk:
    """Parsed rows (features and ids) of the input, the bad rows dropped from them, and how many there were."""

    table: pa.Table
    ids: list[str]
    errors: list[RowError]
    rows: int


@dataclass
class RangeResult:
    rows: int = 0
    scored: int = 0
    errors: list[RowError] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"wait_input": 0.0, "score": 0.0, "write": 0.0})


def score_range(
    source: Source,
    spec: dict[str, Any],
    model: LoadedModel,
    features: list[str],
    ids: list[str],
    sink: BlockSink,
    output_format: Format,
    header: bool,
    chunk_bytes: int,
    batch_rows: int,
    threads: int,
) -> RangeResult:
    """Score the rows of one range into `sink`; row numbers in errors count from the range's first row."""
    import pyarrow as pa

    if len(features) != model.n_features:
        raise InvalidInput(f"{len(features)} feature columns given but the model takes {model.n_features}")
    id_types, tables = _tables(source, spec, features, ids, chunk_bytes, batch_rows)
    schema = pa.schema([*zip(ids, id_types, strict=True), *model.output_schema()])
    clash = set(ids) & set(model.output_schema().names)
    if clash:
        raise InvalidInput(f"id column(s) {sorted(clash)} have the names of prediction columns")
    result = RangeResult()
    writer: Any = open_writer(output_format, sink, schema, header)
    chunks = prefetch(_chunks(tables, ids))
    with ThreadPoolExecutor(threads, thread_name_prefix="scoring-run") as runs:
        for chunk_ids, outputs in prefetch(_scored(chunks, model, features, batch_rows, runs, result)):
            started = time.perf_counter()
            columns = [chunk_ids.column(name) for name in ids] + [pa.array(values) for values in outputs]
            writer.write_table(pa.table(columns, schema=schema))
            result.seconds["write"] += time.perf_counter() - started
    writer.close()
    sink.close()
    return result


def _scored(
    chunks: Iterator[Chunk],
    model: LoadedModel,
    features: list[str],
    batch_rows: int,
    runs: ThreadPoolExecutor,
    result: RangeResult,
) -> Iterator[tuple[pa.Table, list[np.ndarray]]]:
    """The id columns and the model's output columns of each chunk; counts rows and errors into `result`.

    The batches of a chunk are scored on the `runs` threads, as many at once as it has.
    Each thread copies its batch's features into a batch-sized matrix of its own, reused
    from batch to batch: the copy is still in that core's cache when the session reads
    it, and no chunk-sized matrix is allocated (new pages cost this VM ~1.8 us each).
    """
    import numpy as np

    local = threading.local()

    def score(batch: pa.Table) -> list[np.ndarray]:
        matrix = getattr(local, "matrix", None)
        if matrix is None:
            matrix = local.matrix = np.empty((batch_rows, len(features)), dtype=model.input_dtype)
        return model.output_columns(model.run(to_matrix(batch, features, model.input_dtype, out=matrix)))

    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        result.seconds["wait_input"] += time.perf_counter() - started
        if chunk is None:
            return
        result.rows += chunk.rows
        result.errors.extend(chunk.errors)
        started = time.perf_counter()
        # Batches bound the size of the session's intermediate tensors (an MLP's activations).
        starts = range(0, chunk.table.num_rows, batch_rows)
        batches = list(runs.map(score, [chunk.table.slice(start, batch_rows) for start in starts]))
        result.seconds["score"] += time.perf_counter() - started
        if batches:
            # One write per chunk: Parquet row groups of a chunk's rows, not of a batch's.
            outputs = [np.concatenate(columns) for columns in zip(*batches, strict=True)]
            result.scored += len(outputs[0]) if outputs else 0
            yield chunk.table.select(chunk.ids), outputs


def _tables(
    source: Source, spec: dict[str, Any], features: list[str], ids: list[str], chunk_bytes: int, batch_rows: int
) -> tuple[list[pa.DataType], Iterator[tuple[pa.Table, list[RowError], int]]]:
    """The id columns' types and an iterator of parsed chunks: (good rows, bad rows, rows seen).

    The input is downloaded on a thread of its own, a piece (CSV, JSON Lines) or a row
    group (Parquet) ahead of the parser; a chunk holds about `chunk_bytes` of input.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if source.format == "parquet":
        metadata = pq.ParquetFile(BlobReader(source.blob, source.size, source.etag)).metadata
        schema = metadata.schema.to_arrow_schema()
        parquet_columns(schema, features, ids, source.where)
        spans = prefetch(_row_group_spans(source, metadata, spec["row_groups"], [*features, *ids], chunk_bytes))
        rows = max(batch_rows, chunk_bytes // (4 * max(len(features), 1)))
        tables = _parse_parquet(source, metadata, spans, [*features, *ids], rows)
        return [schema.field(name).type for name in ids], tables
    if source.format == "csv":
        check_columns(source.info["columns"], features, ids, source.where)
    pieces = read_lines_range(source.blob, source.size, spec["start"], spec["end"], chunk_bytes, source.etag)
    return [pa.string()] * len(ids), _parse_text(source, prefetch(pieces), features, ids)


def _row_group_spans(
    source: Source, metadata: pq.FileMetaData, row_groups: list[int], columns: list[str], chunk_bytes: int
) -> Iterator[tuple[int, dict[int, memoryview] | None]]:
    """Each row group with the bytes of its column chunks, fetched in large GETs.

    A row group whose columns exceed four chunks is not fetched ahead (None): it is
    read as a stream instead, so memory stays bounded whatever the writer chose.
    """
    for row_group in row_groups:
        spans = parquet_spans(metadata, row_group, columns, gap=1 << 20)
        if sum(end - start for start, end in spans) > 4 * chunk_bytes:
            yield row_group, None
        else:
            yield row_group, read_spans(source.blob, spans, source.etag)


def _parse_parquet(
    source: Source,
    metadata: pq.FileMetaData,
    spans: Iterator[tuple[int, dict[int, memoryview] | None]],
    columns: list[str],
    rows: int,
) -> Iterator[tuple[pa.Table, list[RowError], int]]:
    for row_group, fetched in spans:
        reader = BlobReader(source.blob, source.size, source.etag, fetched)
        for table in parquet_batches(reader, metadata, [row_group], columns, rows, buffered=fetched is None):
            yield table, [], table.num_rows
        # Free this row group's bytes before the next one is fetched, not after.
        del reader, fetched


def _parse_text(
    source: Source, pieces: Iterator[memoryview], features: list[str], ids: list[str]
) -> Iterator[tuple[pa.Table, list[RowError], int]]:
    first_row = 1
    for view in pieces:
        if source.format == "csv":
            parsed = parse_csv(view, source.info["columns"], features, ids, first_row)
        else:
            piece = bytes(view)
            if first_row == 1:
                _check_first_record(piece, features, ids, source.where)
            parsed = parse_jsonl(piece, features, ids, first_row)
        first_row += parsed[2]
        yield parsed


def _check_first_record(piece: bytes, features: list[str], ids: list[str], where: str) -> None:
    """JSON Lines has no header: a column the first record lacks is a missing column."""
    line = next((line for line in piece.split(b"\n") if line.strip()), b"")
    try:
        record = json.loads(line) if line else {}
    except ValueError:
        return
    if isinstance(record, dict):
        missing = [name for name in [*features, *ids] if name not in record]
        if missing:
            raise InvalidInput(f"{where}: missing column(s) {', '.join(map(repr, missing))}; it has {sorted(record)}")


def _chunks(tables: Iterator[tuple[pa.Table, list[RowError], int]], ids: list[str]) -> Iterator[Chunk]:
    for table, errors, rows in tables:
        yield Chunk(table, ids, errors, rows)


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Produce `items` on a thread; its exceptions re-raise here.

    At most `depth` items are alive at once: the one the consumer holds (until it asks
    for the next) and those produced or being produced ahead of it. With depth 2 the
    producer works on the next item while the consumer works on this one, and no more.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue()
    slots = threading.Semaphore(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            while True:
                while not slots.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(items, _END)
                if item is _END:
                    buffer.put(("end", None))
                    return
                buffer.put(("item", item))
        except BaseException as error:
            buffer.put(("error", error))
        finally:
            # Stops the stages upstream of this one now rather than when the generator is collected.
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="scoring-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
            value = None  # the consumer is done with it: free it before producing the next
            slots.release()
    finally:
        stop.set()


_END: Any = object()
