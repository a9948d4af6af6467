"""Split an input into ranges that separate function instances can score in parallel.

CSV and JSON Lines split into byte ranges of about `range_bytes`; each range owns
the lines that start inside it, so nothing is read to plan them. Parquet splits at
row-group boundaries (its unit of random access): consecutive row groups are grouped
up to about `range_bytes` (uncompressed), so a file written as one row group is one range.
"""

from __future__ import annotations

from typing import Any

from azure.storage.blob import BlobClient

from shared.scoring.blobio import open_reader, read_range
from shared.scoring.errors import InvalidInput
from shared.scoring.formats import Format, check_columns, parquet_columns, parse_header

HEADER_BYTES = 64 * 1024


def inspect_input(blob: BlobClient, fmt: Format, size: int, etag: str, where: str) -> dict[str, Any]:
    """What the ranges need to know about the input: CSV columns and data start, Parquet row groups."""
    if fmt == "csv":
        head = read_range(blob, 0, min(size, HEADER_BYTES), etag) if size else b""
        if not head:
            raise InvalidInput(f"{where}: the file is empty; a CSV file needs at least a header line")
        if b"\n" not in head and size > len(head):
            raise InvalidInput(f"{where}: the header line is longer than {HEADER_BYTES} bytes")
        columns, data_start = parse_header(head, where)
        return {"columns": columns, "data_start": data_start}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(open_reader(blob, size, etag, buffer_size=1 << 16)).metadata
        except Exception as error:  # pyarrow raises ArrowInvalid / OSError for a file that is not Parquet
            raise InvalidInput(f"{where}: not a Parquet file: {error}") from error
        return {
            "columns": meta.schema.to_arrow_schema().names,
            "row_groups": [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)],
            "rows": meta.num_rows,
        }
    return {"data_start": 0}


def check_input_columns(
    fmt: Format,
    info: dict[str, Any],
    blob: BlobClient,
    size: int,
    etag: str,
    features: list[str],
    ids: list[str],
    where: str,
) -> None:
    """Fail early when the header or schema lacks a requested column (JSON Lines is checked per range)."""
    if fmt == "csv":
        check_columns(info["columns"], features, ids, where)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(open_reader(blob, size, etag, buffer_size=1 << 16)).schema_arrow
        parquet_columns(schema, features, ids, where)


def plan_ranges(fmt: Format, info: dict[str, Any], size: int, range_bytes: int) -> list[dict[str, Any]]:
    """The job's ranges, in output order."""
    if fmt == "parquet":
        ranges: list[dict[str, Any]] = []
        group: list[int] = []
        group_bytes = 0
        for index, row_group_bytes in enumerate(info["row_groups"]):
            group.append(index)
            group_bytes += row_group_bytes
            if group_bytes >= range_bytes:
                ranges.append({"row_groups": group})
                group, group_bytes = [], 0
        if group or not ranges:
            ranges.append({"row_groups": group})
        return ranges
    start = info["data_start"]
    if size <= start:
        return [{"start": start, "end": start}]
    return [{"start": offset, "end": min(offset + range_bytes, size)} for offset in range(start, size, range_bytes)]
