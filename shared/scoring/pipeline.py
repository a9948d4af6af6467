"""Score one range in bounded memory: read and parse the next chunk while scoring the last.

A reader thread downloads, parses and converts chunks to float32 matrices (pyarrow
and NumPy release the GIL); the calling thread runs the session and writes the
results to a sink that stages blocks. At most `depth` chunks wait between them, so
memory holds a few chunks whatever the file size.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from shared.scoring.blobio import BlobReader, BlockSink, read_lines_range
from shared.scoring.errors import InvalidInput, RowError
from shared.scoring.formats import (
    Format,
    check_columns,
    open_writer,
    parquet_batches,
    parquet_columns,
    parse_csv,
    parse_jsonl,
    to_matrix,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
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
    ids: pa.Table
    matrix: np.ndarray
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
) -> RangeResult:
    """Score the rows of one range into `sink`; row numbers in errors count from the range's first row."""
    import pyarrow as pa

    if len(features) != model.n_features:
        raise InvalidInput(f"{len(features)} feature columns given but the model takes {model.n_features}")
    id_types, chunks = _chunks(source, spec, features, ids, chunk_bytes, batch_rows)
    schema = pa.schema([*zip(ids, id_types, strict=True), *model.output_schema()])
    clash = set(ids) & set(model.output_schema().names)
    if clash:
        raise InvalidInput(f"id column(s) {sorted(clash)} have the names of prediction columns")
    result = RangeResult()
    writer: Any = open_writer(output_format, sink, schema, header)
    items = prefetch(_as_matrices(chunks, features, ids, model.input_dtype))
    while True:
        started = time.perf_counter()
        chunk = next(items, None)
        result.seconds["wait_input"] += time.perf_counter() - started
        if chunk is None:
            break
        result.rows += chunk.rows
        result.errors.extend(chunk.errors)
        # Batches bound the size of the session's intermediate tensors (an MLP's activations).
        for start in range(0, chunk.matrix.shape[0], batch_rows):
            scored = time.perf_counter()
            outputs = model.output_columns(model.run(chunk.matrix[start : start + batch_rows]))
            written = time.perf_counter()
            result.seconds["score"] += written - scored
            ids_slice = chunk.ids.slice(start, batch_rows)
            columns = [ids_slice.column(name) for name in ids] + [pa.array(values) for values in outputs]
            writer.write_table(pa.table(columns, schema=schema))
            result.seconds["write"] += time.perf_counter() - written
            result.scored += len(outputs[0]) if outputs else 0
    writer.close()
    sink.close()
    return result


def _chunks(
    source: Source, spec: dict[str, Any], features: list[str], ids: list[str], chunk_bytes: int, batch_rows: int
) -> tuple[list[pa.DataType], Iterator[tuple[pa.Table, list[RowError], int]]]:
    """The id columns' types and an iterator of parsed chunks: (good rows, bad rows, rows seen)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if source.format == "parquet":
        # Unbuffered: pyarrow buffers each column's stream itself; a shared buffer would refill on every seek.
        reader = BlobReader(source.blob, source.size, source.etag)
        schema = pq.ParquetFile(reader).schema_arrow
        parquet_columns(schema, features, ids, source.where)
        tables = parquet_batches(reader, spec["row_groups"], [*features, *ids], batch_rows)
        return [schema.field(name).type for name in ids], ((table, [], table.num_rows) for table in tables)
    if source.format == "csv":
        check_columns(source.info["columns"], features, ids, source.where)
    pieces = read_lines_range(source.blob, source.size, spec["start"], spec["end"], chunk_bytes, source.etag)
    return [pa.string()] * len(ids), _parse_text(source, pieces, features, ids)


def _parse_text(
    source: Source, pieces: Iterator[bytes], features: list[str], ids: list[str]
) -> Iterator[tuple[pa.Table, list[RowError], int]]:
    first_row = 1
    for piece in pieces:
        if source.format == "csv":
            parsed = parse_csv(piece, source.info["columns"], features, ids, first_row)
        else:
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


def _as_matrices(
    chunks: Iterator[tuple[pa.Table, list[RowError], int]], features: list[str], ids: list[str], dtype: np.dtype
) -> Iterator[Chunk]:
    for table, errors, rows in chunks:
        yield Chunk(table.select(ids), to_matrix(table, features, dtype), errors, rows)


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Produce `items` on a thread, up to `depth` ahead; its exceptions re-raise here."""
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as error:
            put(("error", error))

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
    finally:
        stop.set()
