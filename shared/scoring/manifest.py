"""What a finished job leaves next to its output: the manifest and the errors file.

Output layout, for an output path `P` in the output container:

- CSV: one blob `P`, committed from every range's staged blocks in range order.
- Parquet: a folder `P/part-00000.parquet`, ... (one complete file per range; a
  Parquet footer holds absolute offsets, so ranges written in parallel cannot be
  concatenated into one file without rewriting it). Every part is committed by the
  last range to finish, after all ranges succeeded; pyarrow, pandas, Spark and
  DuckDB read the folder as one dataset.
- `P.errors.csv`: unparsable rows (row number from 1 after the header, reason, text).
- `P.manifest.json`: written last, for completed and failed jobs alike; its `state`
  says whether the output is whole. A failed job commits no output at all.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from azure.storage.blob import BlobServiceClient, ContentSettings

from shared.scoring.blobio import commit_blocks

Doc = dict[str, Any]


def part_name(path: str, index: int) -> str:
    return f"{path}/part-{index:05d}.parquet"


def manifest_name(path: str) -> str:
    return f"{path}.manifest.json"


def errors_name(path: str) -> str:
    return f"{path}.errors.csv"


def commit_output(blobs: BlobServiceClient, job: Doc, ranges: list[Doc]) -> list[str]:
    """Commit every range's staged blocks; return the output blob names. Repeating it is harmless."""
    output = job["output"]
    container = blobs.get_container_client(output["container"])
    if output["format"] == "csv":
        blocks = [block for item in ranges for block in item["blocks"]]
        commit_blocks(container.get_blob_client(output["path"]), blocks, "text/csv")
        return [output["path"]]
    names = []
    for index, item in enumerate(ranges):
        name = part_name(output["path"], index)
        commit_blocks(container.get_blob_client(name), item["blocks"], "application/vnd.apache.parquet")
        names.append(name)
    return names


def write_errors(blobs: BlobServiceClient, job: Doc, ranges: list[Doc]) -> str | None:
    """The errors file with row numbers counted over the whole input; None when every row parsed."""
    if not any(item["errors"] for item in ranges):
        return None
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["row", "reason", "text"])
    first = 0
    for item in ranges:
        for error in item["errors"]:
            writer.writerow([first + error["row"], error["reason"], error["text"]])
        if item["bad_rows"] > len(item["errors"]):
            writer.writerow(
                ["", f"{item['bad_rows'] - len(item['errors'])} more bad rows in this range not listed", ""]
            )
        first += item["rows"]
    name = errors_name(job["output"]["path"])
    blob = blobs.get_blob_client(job["output"]["container"], name)
    blob.upload_blob(text.getvalue().encode(), overwrite=True, content_settings=ContentSettings("text/csv"))
    return name


def write_manifest(
    blobs: BlobServiceClient, job: Doc, ranges: list[Doc], parts: list[str], errors_file: str | None
) -> Doc:
    """Write and return the manifest of a completed or failed job."""
    rows = sum(item["rows"] for item in ranges)
    bad_rows = sum(item["bad_rows"] for item in ranges)
    seconds = _seconds(job)
    stages: dict[str, float] = {}
    for item in ranges:
        for stage, value in item.get("seconds", {}).items():
            stages[stage] = round(stages.get(stage, 0.0) + value, 3)
    manifest = {
        "job_id": job["id"],
        "state": job["state"],
        "error": job.get("error"),
        "input": job["input"],
        "model": job["model"],
        "features": job.get("features_used") or job.get("features"),
        "id_columns": job["id_columns"],
        "output": {**job["output"], "blobs": parts if job["state"] == "completed" else []},
        "rows": rows,
        "scored_rows": rows - bad_rows,
        "bad_rows": bad_rows,
        "max_error_share": job["max_error_share"],
        "errors_file": errors_file,
        "ranges": len(job["ranges"]),
        "timings": {
            "created": job["created"],
            "started": job.get("started"),
            "finished": job.get("finished"),
            "seconds": seconds,
            "rows_per_second": round(rows / seconds, 1) if seconds else None,
            "range_seconds": stages,
        },
    }
    blob = blobs.get_blob_client(job["output"]["container"], manifest_name(job["output"]["path"]))
    data = json.dumps(manifest, indent=2, default=str).encode()
    blob.upload_blob(data, overwrite=True, content_settings=ContentSettings("application/json"))
    return manifest


def _seconds(job: Doc) -> float | None:
    from datetime import datetime

    if not job.get("started") or not job.get("finished"):
        return None
    started = datetime.fromisoformat(str(job["started"]))
    finished = datetime.fromisoformat(str(job["finished"]))
    return round((finished - started).total_seconds(), 3)
