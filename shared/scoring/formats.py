"""Input and output formats: parse chunks of CSV / JSON Lines, read Parquet, write results.

Parsing is vectorised with pyarrow on chunks of whole lines; only a chunk that holds
an unparsable row is parsed again slowly, to find each bad row and its number. Rows
are numbered from 1 after the header, blank lines not counted. Feature values become
float32 (nulls and empty cells become NaN); id columns of text inputs stay strings, so
every range of a job writes the same schema.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from shared.scoring.errors import InvalidInput, RowError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

Format = Literal["csv", "parquet", "jsonl"]
EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
EMPTY_NULLS = [""]
"""The null spellings of CSV's first try: an empty cell. "NaN" and "inf" parse as numbers anyway; the
rest of pyarrow's default spellings ("NULL", "NA", "#N/A", ...) are read by a second try with them all.
Each cell is looked up among the null spellings before it is parsed: with pyarrow's seventeen that
look-up cost 13-20% of the engine's parse of floats (docs/scoring.md, third round). A piece with a bad
row is tried twice before it is parsed row by row: a bad file costs one more try, a good one less."""
NUMBER = r"^\s*[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[Nn]a[Nn]|[Ii]nf(inity)?)\s*$"


def detect_format(name: str) -> Format:
    """The format a blob name implies; InvalidInput for anything else."""
    lowered = name.lower()
    for extension, found in EXTENSIONS.items():
        if lowered.endswith(extension):
            return found
    raise InvalidInput(f"input {name!r}: unknown format; use one of {', '.join(EXTENSIONS)}")


def check_columns(available: list[str], features: list[str], ids: list[str], where: str) -> None:
    """Fail naming every requested column the input lacks."""
    missing = [name for name in [*features, *ids] if name not in available]
    if missing:
        raise InvalidInput(f"{where}: missing column(s) {', '.join(map(repr, missing))}; it has {available}")


def parse_header(first_bytes: bytes, where: str) -> tuple[list[str], int]:
    """Column names of a CSV file and the byte offset where its data starts."""
    newline = first_bytes.find(b"\n")
    line = first_bytes if newline < 0 else first_bytes[:newline]
    try:
        text = line.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as error:
        byte = f"byte {line[error.start]:#04x} at offset {error.start}"
        raise InvalidInput(f"{where}: the header (first line) is not UTF-8 text ({byte})") from None
    try:
        columns = next(csv.reader([text]), [])
    except csv.Error as error:
        raise InvalidInput(f"{where}: the header (first line) cannot be read as CSV: {error}") from None
    if not columns or any(not name.strip() for name in columns):
        raise InvalidInput(f"{where}: the first line must be a header naming every column, got {text[:200]!r}")
    return [name.strip() for name in columns], len(first_bytes) if newline < 0 else newline + 1


# CSV ------------------------------------------------------------------------------


def parse_csv(
    data: bytes | memoryview, columns: list[str], features: list[str], ids: list[str], first_row: int
) -> tuple[pa.Table, list[RowError], int]:
    """Parse whole CSV lines; return the good rows, the bad ones and how many rows there were."""
    import pyarrow as pa

    # float64, cast to float32 by `to_matrix`: pyarrow parses text into float64 ~20% faster. On one
    # thread: the pipeline parses while other threads score, and pyarrow's own threads cost ~20% more
    # CPU for the same piece (2.4 against 2.0 core-seconds per million rows of 30 floats).
    for nulls in (EMPTY_NULLS, None):
        try:
            table, invalid = _read_csv(data, columns, features, ids, pa.float64(), threads=False, nulls=nulls)
        except pa.ArrowInvalid:
            continue
        if invalid:
            break
        return table, [], table.num_rows
    return _parse_csv_slowly(data, columns, features, ids, first_row)


def _read_csv(
    data: bytes | memoryview,
    columns: list[str],
    features: list[str],
    ids: list[str],
    feature_type: pa.DataType,
    threads: bool,
    nulls: list[str] | None = None,
) -> tuple[pa.Table, list[tuple[int | None, str]]]:
    """pyarrow's CSV reader; `nulls` are the cells read as null (None: pyarrow's default spellings)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    invalid: list[tuple[int | None, str]] = []

    def skip(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    types = {name: feature_type for name in features} | {name: pa.string() for name in ids}
    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=columns, use_threads=threads, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=[*features, *ids],
            strings_can_be_null=feature_type == pa.string(),
            **({} if nulls is None else {"null_values": nulls}),
        ),
    )
    return table, invalid


def _parse_csv_slowly(
    data: bytes | memoryview, columns: list[str], features: list[str], ids: list[str], first_row: int
) -> tuple[pa.Table, list[RowError], int]:
    """Parse serially as text to number every row, then drop rows whose features are not numbers."""
    import numpy as np
    import pyarrow as pa

    table, invalid = _read_csv(data, columns, features, ids, pa.string(), threads=False)
    errors = [
        RowError(first_row + (number or 0) - 1, f"expected {len(columns)} fields", text) for number, text in invalid
    ]
    total = table.num_rows + len(invalid)
    numbers = np.setdiff1d(np.arange(1, total + 1), [number for number, _ in invalid if number is not None])
    table, bad = _coerce_features(table, features)
    lines = _lines(bytes(data)) if bad else []
    for index, reason in bad:
        number = int(numbers[index])
        errors.append(RowError(first_row + number - 1, reason, lines[number - 1].decode("utf-8", "replace")))
    errors.sort(key=lambda error: error.row)
    return table, errors, total


# JSON Lines ---------------------------------------------------------------------


def parse_jsonl(
    data: bytes, features: list[str], ids: list[str], first_row: int
) -> tuple[pa.Table, list[RowError], int]:
    """Parse whole JSON lines; return the good rows, the bad ones and how many rows there were."""
    import pyarrow as pa

    if not data.strip():
        return _empty(features, ids), [], 0
    try:
        table = _read_json(data, features, ids)
        return table, [], table.num_rows
    except pa.ArrowInvalid:
        pass
    good: list[bytes] = []
    errors: list[RowError] = []
    lines = _lines(data)
    for number, line in enumerate(lines, start=first_row):
        reason = _json_problem(line, features)
        if reason:
            errors.append(RowError(number, reason, line.decode("utf-8", "replace")))
        else:
            good.append(line)
    table = _read_json(b"\n".join(good), features, ids) if good else _empty(features, ids)
    return table, errors, len(lines)


def _read_json(data: bytes, features: list[str], ids: list[str]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pajson

    schema = pa.schema([(name, pa.float32()) for name in features])
    table = pajson.read_json(
        io.BytesIO(data), parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    )
    missing = [name for name in [*features, *ids] if name not in table.column_names]
    for name in missing:
        table = table.append_column(name, pa.nulls(table.num_rows, pa.float32() if name in features else pa.string()))
    columns = [table.column(name) for name in features]
    columns += [pc.cast(table.column(name), pa.string()) for name in ids]
    return pa.table(columns, names=[*features, *ids])


def _json_problem(line: bytes, features: list[str]) -> str:
    try:
        record = json.loads(line)
    except ValueError as error:
        return f"not JSON: {error}"
    if not isinstance(record, dict):
        return "not a JSON object"
    for name in features:
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"feature {name!r} is not a number: {value!r}"[:200]
    return ""


# Parquet -------------------------------------------------------------------------


def parquet_columns(schema: pa.Schema, features: list[str], ids: list[str], where: str) -> None:
    """Fail naming any missing or non-numeric feature column."""
    import pyarrow as pa

    check_columns(schema.names, features, ids, where)
    for name in features:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            raise InvalidInput(f"{where}: feature column {name!r} has type {kind}; expected a number")


def parquet_spans(metadata: pq.FileMetaData, row_group: int, columns: list[str], gap: int) -> list[tuple[int, int]]:
    """The byte spans [start, end) holding the columns' chunks of one row group, merged across gaps below `gap`."""
    wanted = set(columns)
    chunks = []
    group = metadata.row_group(row_group)
    for index in range(group.num_columns):
        column = group.column(index)
        if column.path_in_schema.split(".")[0] not in wanted:
            continue
        start = column.data_page_offset
        if column.has_dictionary_page and 0 < (column.dictionary_page_offset or 0) < start:
            start = column.dictionary_page_offset
        chunks.append((start, start + column.total_compressed_size))
    spans: list[tuple[int, int]] = []
    for start, end in sorted(chunks):
        if spans and start - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def parquet_batches(
    source: object, metadata: pq.FileMetaData, row_groups: list[int], columns: list[str], rows: int, buffered: bool
) -> Iterator[pa.Table]:
    """Row groups of a Parquet file, `rows` at a time.

    `buffered` streams each column chunk through a 1 MiB buffer (for a source that
    reads over the network); otherwise each column chunk is one read (a source whose
    bytes are already in memory).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(source, metadata=metadata, buffer_size=(1 << 20) if buffered else 0, pre_buffer=False)
    for batch in file.iter_batches(batch_size=rows, row_groups=row_groups, columns=columns, use_threads=True):
        yield pa.Table.from_batches([batch])


# Features and output ----------------------------------------------------------------


def to_matrix(table: pa.Table, features: list[str], dtype: np.dtype, out: np.ndarray | None = None) -> np.ndarray:
    """The feature columns as one C-contiguous matrix, nulls as NaN (what ONNX Runtime reads without a copy).

    Float columns (the usual features) are laid out row by row in one pass of Arrow's C++ per record batch
    (`RecordBatch.to_tensor`): a third of the CPU of a copy column by column from Python, in the engine's
    benchmark 0.04 against 0.11-0.12 core-s per million rows of 30 float32 features. A table of one batch
    in `dtype` is that tensor itself; otherwise the rows are written into `out` (its first
    `table.num_rows` rows) when given, which a scoring thread reuses so that it costs no new pages.
    Other column types (integers, decimals, booleans) are copied column by column, cast as they go.
    """
    import numpy as np
    import pyarrow as pa

    selected = table.select(features)
    if all(field.type in (pa.float32(), pa.float64()) for field in selected.schema):
        batches = selected.to_batches()
        tensors = [np.asarray(batch.to_tensor(null_to_nan=True, row_major=True)) for batch in batches]
        if len(tensors) == 1 and tensors[0].dtype == dtype:
            return tensors[0]
        matrix = np.empty((table.num_rows, len(features)), dtype=dtype) if out is None else out[: table.num_rows]
        row = 0
        for values in tensors:
            matrix[row : row + len(values)] = values
            row += len(values)
        return matrix
    matrix = np.empty((table.num_rows, len(features)), dtype=dtype) if out is None else out[: table.num_rows]
    for index, name in enumerate(features):
        row = 0
        for chunk in table.column(name).chunks:
            matrix[row : row + len(chunk), index] = column_values(chunk)
            row += len(chunk)
    return matrix


def column_values(array: pa.Array) -> np.ndarray:
    """A numeric Arrow array as NumPy, nulls as NaN: a view of its values buffer where it can be one.

    Chunk by chunk, never `ChunkedArray.to_numpy`, which first joins a column's chunks
    into a new array (a parsed CSV piece has several chunks per column).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    numeric = pa.types.is_floating(kind) or pa.types.is_integer(kind)
    if not numeric or (array.null_count and not pa.types.is_floating(kind)):
        array, kind = pc.cast(array, pa.float64()), pa.float64()  # decimals, booleans; integers with nulls
    if array.null_count:
        array = pc.fill_null(array, float("nan"))
    numpy_type = np.dtype(kind.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], numpy_type, count=len(array), offset=array.offset * numpy_type.itemsize)


def open_writer(fmt: Format, sink: io.RawIOBase, schema: pa.Schema, header: bool) -> object:
    """A pyarrow writer with `write_table` and `close`, writing to `sink`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "csv":
        return pacsv.CSVWriter(sink, schema, write_options=pacsv.WriteOptions(include_header=header))
    if fmt == "parquet":
        # Scores are nearly all distinct: a dictionary of them costs hashing every value and
        # makes the file larger (12.2 against 8.1 MB for 1 M rows of a label and two scores).
        encoded = [field.name for field in schema if not pa.types.is_floating(field.type)]
        return pq.ParquetWriter(sink, schema, compression="snappy", use_dictionary=encoded)
    raise InvalidInput(f"output format {fmt!r}: use csv or parquet")


def _coerce_features(table: pa.Table, features: list[str]) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Cast text feature columns to float32, dropping rows with a value that is not a number."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    bad = np.zeros(table.num_rows, dtype=bool)
    reasons: dict[int, str] = {}
    for name in features:
        column = table.column(name)
        ok = pc.or_kleene(pc.is_null(column), pc.match_substring_regex(column, NUMBER)).to_numpy(zero_copy_only=False)
        for index in np.flatnonzero(~ok & ~bad):
            reasons[int(index)] = f"feature {name!r} is not a number: {column[int(index)].as_py()!r}"[:200]
        bad |= ~ok
    table = table.filter(pa.array(~bad))
    for name in features:
        table = table.set_column(table.column_names.index(name), name, pc.cast(table.column(name), pa.float32()))
    return table, sorted(reasons.items())


def _lines(data: bytes) -> list[bytes]:
    """The non-blank lines, numbered as pyarrow numbers rows."""
    return [line for line in data.split(b"\n") if line.rstrip(b"\r")]


def _empty(features: list[str], ids: list[str]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        [pa.array([], pa.float32()) for _ in features] + [pa.array([], pa.string()) for _ in ids],
        names=[*features, *ids],
    )
