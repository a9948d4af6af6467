"""Scoring pieces that need no storage: request validation, range planning, parsing, the HTTP 400."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import numpy as np
import pytest
from pydantic import ValidationError

from shared.scoring.errors import InvalidInput
from shared.scoring.formats import detect_format, open_writer, parse_csv, parse_header, parse_jsonl, to_matrix
from shared.scoring.pipeline import prefetch
from shared.scoring.plan import plan_ranges
from shared.scoring.request import OUTPUT_CONTAINERS, OnnxBlob, RegisteredModel, ScoringRequest

COLUMNS = ["id", "a", "b"]


def request(**changes: object) -> dict:
    return {"input": "scoring-input/x/data.csv", "model": {"blob": "models/m.onnx"}} | changes


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"input": "scoring-input/../secrets.csv"}, "input"),
        ({"input": "Bad_Container/data.csv"}, "input"),
        ({"model": {"blob": "models/m.pkl"}}, "model"),
        ({"model": {"location": "dev", "name": "churn/../x", "version": "1"}}, "model"),
        ({"output": {"format": "xlsx"}}, "output.format"),
        ({"output": {"path": "a//b.csv"}}, "output.path"),
        ({"features": ["a", "a"]}, "features"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_request_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScoringRequest.model_validate(request(**changes))
    assert any(".".join(map(str, error["loc"])).startswith(field) for error in caught.value.errors())


def test_a_model_is_either_registered_or_a_blob() -> None:
    registered = ScoringRequest.model_validate(request(model={"location": "dev", "name": "churn", "version": "3"}))
    assert isinstance(registered.model, RegisteredModel)
    assert isinstance(ScoringRequest.model_validate(request()).model, OnnxBlob)


def test_text_ranges_cover_the_data_exactly_once() -> None:
    ranges = plan_ranges("csv", {"data_start": 10}, size=1000, range_bytes=300)
    assert [(item["start"], item["end"]) for item in ranges] == [(10, 310), (310, 610), (610, 910), (910, 1000)]
    assert plan_ranges("csv", {"data_start": 10}, size=10, range_bytes=300) == [{"start": 10, "end": 10}]


def test_parquet_ranges_group_row_groups_up_to_the_range_size() -> None:
    ranges = plan_ranges("parquet", {"row_groups": [100, 100, 250, 50, 10]}, size=0, range_bytes=200)
    assert [item["row_groups"] for item in ranges] == [[0, 1], [2], [3, 4]]
    assert plan_ranges("parquet", {"row_groups": []}, size=0, range_bytes=200) == [{"row_groups": []}]


def test_csv_header_and_format() -> None:
    assert parse_header(b'\xef\xbb\xbf"id",a,b\r\n1,2,3\n', "input") == (COLUMNS, 13)
    with pytest.raises(InvalidInput, match="header"):
        parse_header(b"id,,b\n", "input")
    assert detect_format("x/y.PARQUET") == "parquet"
    with pytest.raises(InvalidInput, match=r"unknown format"):
        detect_format("x/y.xlsx")


def test_parquet_output_encodes_ids_and_labels_with_a_dictionary_and_scores_plainly() -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 50_000
    scores = np.random.default_rng(0).random(rows, dtype=np.float32)
    table = pa.table({"id": [f"c{i % 7}" for i in range(rows)], "label": (scores > 0.5).astype(np.int64), "p": scores})
    sink = io.BytesIO()
    writer: Any = open_writer("parquet", sink, table.schema, header=True)
    writer.write_table(table)
    writer.close()

    group = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    assert "RLE_DICTIONARY" in encodings["id"] and "RLE_DICTIONARY" in encodings["label"]
    assert "RLE_DICTIONARY" not in encodings["p"], encodings
    assert pq.read_table(io.BytesIO(sink.getvalue())).equals(table)


def test_csv_rows_that_do_not_parse_are_numbered_and_dropped() -> None:
    data = b"r1,1,2\nr2,x,2\n\nr3,3\nr4,4,5\n"

    table, errors, rows = parse_csv(data, COLUMNS, ["a", "b"], ["id"], first_row=101)

    assert rows == 4
    assert table.column("id").to_pylist() == ["r1", "r4"]
    assert [(error.row, error.reason) for error in errors] == [
        (102, "feature 'a' is not a number: 'x'"),
        (103, "expected 3 fields"),
    ]
    assert errors[0].text == "r2,x,2"


def test_empty_cells_are_missing_values_not_errors() -> None:
    table, errors, _ = parse_csv(b"r1,,2\n", COLUMNS, ["a", "b"], ["id"], first_row=1)
    assert errors == []
    assert np.isnan(to_matrix(table, ["a", "b"], np.dtype(np.float32))[0, 0])


@pytest.mark.parametrize("spelling", ["", '""', "NaN", "-nan", "NULL", "null", "NA", "N/A", "n/a", "#N/A", "1.#IND"])
def test_every_null_spelling_pyarrow_knows_is_a_missing_value_not_an_error(spelling: str) -> None:
    """The first try reads only empty cells as null; the other spellings must still be NaN, not errors."""
    data = f"r1,{spelling},2\nr2,3,4\n".encode()

    table, errors, rows = parse_csv(data, COLUMNS, ["a", "b"], ["id"], first_row=1)

    assert (errors, rows) == ([], 2)
    matrix = to_matrix(table, ["a", "b"], np.dtype(np.float32))
    assert np.isnan(matrix[0, 0]) and matrix[1].tolist() == [3, 4]


def test_features_of_any_number_type_in_several_chunks_fill_a_given_batch_matrix() -> None:
    """What a scoring thread does per batch: a slice of a parsed chunk into its own reused matrix."""
    import decimal

    import pyarrow as pa

    table = pa.table({
        "a": pa.chunked_array([[1.0, None], [3.0, 4.0]], pa.float64()),
        "b": pa.chunked_array([[1], [None, 3, 4]], pa.int64()),
        "c": pa.array([decimal.Decimal("1.5"), None, decimal.Decimal("2"), decimal.Decimal("0.25")]),
        "d": pa.array([True, False, None, True]),
    }).slice(1)
    out = np.full((8, 4), -1, dtype=np.float32)

    matrix = to_matrix(table, ["a", "b", "c", "d"], np.dtype(np.float32), out=out)

    assert np.shares_memory(matrix, out) and matrix.shape == (3, 4)
    np.testing.assert_array_equal(matrix, np.array(
        [[np.nan, np.nan, np.nan, 0], [3, 3, 2, np.nan], [4, 4, 0.25, 1]], dtype=np.float32))
    assert (out[3:] == -1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_features_are_laid_out_in_the_order_asked_across_chunks_slices_and_nulls(dtype: type) -> None:
    """The float path (Arrow's `to_tensor`, record batch by record batch) gives what a copy column by column
    gives: the features' order, not the table's; nulls as NaN; a slice's offset; float64 cast to float32."""
    import pyarrow as pa

    table = pa.table({
        "id": pa.array(["r0", "r1", "r2", "r3", "r4"]),
        "b": pa.chunked_array([[10.0, 11.0], [12.0, None, 14.0]], pa.float32()),
        "a": pa.chunked_array([[0.5, None, 2.5], [3.5, 4.5]], pa.float64()),
    }).slice(1)
    expected = np.array([[np.nan, 11], [2.5, 12], [3.5, np.nan], [4.5, 14]], dtype=dtype)

    alone = to_matrix(table, ["a", "b"], np.dtype(dtype))
    out = np.full((6, 2), -1, dtype=dtype)
    into = to_matrix(table, ["a", "b"], np.dtype(dtype), out=out)
    single = to_matrix(table.combine_chunks(), ["a", "b"], np.dtype(dtype))

    for matrix in (alone, into, single):
        assert matrix.flags.c_contiguous and matrix.dtype == dtype
        np.testing.assert_array_equal(matrix, expected)
    assert np.shares_memory(into, out) and (out[4:] == -1).all()


def test_a_number_column_without_nulls_is_read_in_place() -> None:
    import pyarrow as pa

    from shared.scoring.formats import column_values

    array = pa.array(np.arange(10, dtype=np.float32)).slice(2, 5)
    values = column_values(array)

    assert values.tolist() == [2, 3, 4, 5, 6]
    assert values.ctypes.data == array.buffers()[1].address + 2 * 4


def test_json_lines_that_do_not_parse_are_numbered_and_dropped() -> None:
    data = b'{"id": 1, "a": 1, "b": 2}\n{"id": 2, "a": "x", "b": 2}\nnot json\n{"id": 3, "a": 3.5, "b": null}\n'

    table, errors, rows = parse_jsonl(data, ["a", "b"], ["id"], first_row=1)

    assert rows == 4
    assert table.column("id").to_pylist() == ["1", "3"]
    assert [error.row for error in errors] == [2, 3]
    matrix = to_matrix(table, ["a", "b"], np.dtype(np.float32))
    assert matrix.flags.c_contiguous and matrix.dtype == np.float32
    assert matrix[1, 0] == 3.5 and np.isnan(matrix[1, 1])


def test_prefetch_keeps_order_and_reraises_the_producers_error() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("disk on fire")

    seen = []
    with pytest.raises(RuntimeError, match="disk on fire"):
        for item in prefetch(items()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_works_at_most_depth_items_ahead_of_the_consumer() -> None:
    produced = []

    def items() -> Iterator[int]:
        for item in range(10):
            produced.append(item)
            yield item

    stream = prefetch(items(), depth=2)
    first = next(stream)
    time.sleep(0.3)  # time enough for an unbounded producer to run ahead

    assert first == 0 and produced == [0, 1]
    assert list(stream) == list(range(1, 10))


def test_submit_answers_400_naming_the_bad_field() -> None:
    from handlers import scoring

    handler = scoring.score_submit.build().get_user_function()
    body = json.dumps(request(model={"blob": "models/m.txt"})).encode()

    response = handler(func.HttpRequest("POST", "/api/score", body=body))

    assert response.status_code == 400
    problems = json.loads(response.get_body())["problems"]
    assert problems[0]["field"].startswith("model")


@pytest.mark.parametrize("container", ["models", "azure-webjobs-secrets", "aml-reactor-state", "scoring-input"])
def test_an_output_container_outside_the_settings_is_refused_naming_output(container: str) -> None:
    body = request(output={"container": container, "path": "x/../../y.csv".replace("../", "")})
    with pytest.raises(ValidationError) as caught:
        ScoringRequest.model_validate(body, context={OUTPUT_CONTAINERS: {"scoring-output"}})
    assert [".".join(map(str, error["loc"])) for error in caught.value.errors()] == ["output.container"]
    assert "scoring writes only to scoring-output" in str(caught.value)
    allowed = ScoringRequest.model_validate(request(output={"container": "scoring-output"}),
                                            context={OUTPUT_CONTAINERS: {"scoring-output"}})
    assert allowed.output.container == "scoring-output"


class _Config:
    output_container = "scoring-output"


class _Ports:
    config = _Config()


def test_submit_answers_400_naming_output_for_a_container_outside_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handlers import scoring

    monkeypatch.setattr(scoring, "_ports", lambda: _Ports())
    handler = scoring.score_submit.build().get_user_function()
    body = json.dumps(request(output={"container": "azure-webjobs-secrets", "path": "host/default.json"})).encode()

    response = handler(func.HttpRequest("POST", "/api/score", body=body))

    assert response.status_code == 400
    assert [problem["field"] for problem in json.loads(response.get_body())["problems"]] == ["output.container"]


@pytest.mark.parametrize("body", [
    b"[" * 5000, b'{"input": ' + b"9" * 5000 + b"}", b'{"input": "\\ud800"}', b"\xff\xfe", b"",
    b'{"input": "scoring-input/a.csv", "model": {"blob": "models/m.onnx"}, "features": [' + b"[" * 3000 + b"]}",
])
def test_submit_answers_400_for_a_body_it_cannot_read(body: bytes) -> None:
    from handlers import scoring

    handler = scoring.score_submit.build().get_user_function()
    response = handler(func.HttpRequest("POST", "/api/score", body=body))
    assert response.status_code == 400, response.get_body()


@pytest.mark.parametrize("job_id", ["x..y", "..", "score-../x", "a/b", "score-" + "0" * 23 + "\n", "é", "x" * 5000])
def test_a_status_lookup_of_an_id_that_is_no_job_id_answers_400_naming_job_id(job_id: str) -> None:
    from handlers import scoring

    handler = scoring.score_status.build().get_user_function()
    response = handler(func.HttpRequest("GET", f"/api/score/{job_id}", body=b"", route_params={"job_id": job_id}))
    assert response.status_code == 400
    assert json.loads(response.get_body())["error"].startswith("job_id: ")


@pytest.mark.parametrize("head", [b"id,caf\xe9,b\n1,2,3\n", b"\xff\xfei\x00d\x00", b"id,a,\xc3"])
def test_a_csv_header_that_is_not_utf8_is_invalid_input_naming_the_header(head: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"input x.csv: the header \(first line\) is not UTF-8 text \(byte 0x"):
        parse_header(head, "input x.csv")


def test_a_csv_header_with_a_field_too_long_for_csv_is_invalid_input_naming_the_header() -> None:
    with pytest.raises(InvalidInput, match=r"input x.csv: the header \(first line\) cannot be read as CSV"):
        parse_header(b'id,"' + b"a" * 200_000 + b'"\n', "input x.csv")
