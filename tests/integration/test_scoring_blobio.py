"""The scoring engine's raw ranged GETs, on a real Azurite (issue 23, item 4)."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ResourceModifiedError
from azure.storage.blob import BlobServiceClient

from shared.scoring import blobio
from shared.scoring.blobio import read_into
from shared.settings import Settings

DATA = bytes(range(256)) * 4099  # ~1 MiB, no repeating 8 KiB pattern


@pytest.fixture
def blob(settings: Settings):  # type: ignore[no-untyped-def]
    service = BlobServiceClient.from_connection_string(settings.storage_connection or "")
    container = service.create_container(f"blobio-{uuid.uuid4().hex[:8]}")
    client = container.get_blob_client("data.bin")
    client.upload_blob(DATA)
    yield client
    container.delete_container()


def test_read_into_fills_the_buffer_with_the_range_across_several_gets(blob, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(blobio, "GET_BYTES", 100_000)  # 7 GETs, the last one short
    view = memoryview(bytearray(650_001))
    read_into(blob, 12_345, view, blob.get_blob_properties().etag)
    assert bytes(view) == DATA[12_345 : 12_345 + 650_001]


def test_the_connection_is_reused_after_a_body_read_into_a_buffer(blob, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from urllib3.connection import HTTPConnection

    connects = []
    connect = HTTPConnection.connect

    def counted(self: HTTPConnection) -> None:
        connects.append(1)
        connect(self)

    monkeypatch.setattr(HTTPConnection, "connect", counted)
    view = memoryview(bytearray(1000))
    for offset in range(0, 50_000, 1000):
        read_into(blob, offset, view)
        assert bytes(view) == DATA[offset : offset + 1000]
    assert len(connects) <= 1, f"{len(connects)} connections for 50 GETs: each body must leave its connection clean"


def test_a_blob_changed_since_it_was_planned_fails_the_read(blob) -> None:  # type: ignore[no-untyped-def]
    etag = blob.get_blob_properties().etag
    blob.upload_blob(DATA[::-1], overwrite=True)
    with pytest.raises(ResourceModifiedError):
        read_into(blob, 0, memoryview(bytearray(1000)), etag)


def test_a_range_past_the_end_of_the_blob_fails_rather_than_leaving_bytes_unread(blob) -> None:  # type: ignore[no-untyped-def]
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError):
        read_into(blob, len(DATA) - 10, memoryview(bytearray(100)))


def test_a_body_cut_short_is_asked_for_again(blob, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from azure.core.exceptions import IncompleteReadError

    read_body, calls = blobio._read_body, []

    def cut_once(response: object, view: memoryview) -> None:
        calls.append(1)
        if len(calls) == 1:
            view[:] = b"\0" * len(view)
            raise IncompleteReadError("connection reset mid-body")
        read_body(response, view)

    monkeypatch.setattr(blobio, "_read_body", cut_once)
    view = memoryview(bytearray(5000))
    read_into(blob, 777, view)
    assert bytes(view) == DATA[777:5777] and len(calls) == 2
