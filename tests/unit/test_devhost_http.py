"""The local host answers an HTTP function's `HttpResponse` as the Functions host does: the
Python worker turns `mimetype` and `charset` into `Content-Type` unless the function set that
header itself (azure.functions.http.HttpResponseConverter), and a `str` return is text.

A small function app in a temporary folder, served on loopback by `devhost.host.FunctionHost`."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.host import FunctionHost
from tests.unit.small_apps import small_app

APP = '''
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="json")
def as_json(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"ok": true}', mimetype="application/json", headers={"x-correlation-id": "c1"})


@app.route(route="header")
def own_header(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("body{}", mimetype="text/css", headers={"Content-Type": "text/css; charset=ascii"})


@app.route(route="default")
def default(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("plain")


@app.route(route="html")
def html(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("<p>é</p>", mimetype="text/html", charset="latin-1")


@app.route(route="text")
def text(req: func.HttpRequest) -> str:
    return "a string"


@app.route(route="locked", auth_level=func.AuthLevel.FUNCTION)
def locked(req: func.HttpRequest) -> str:
    return "opened"
'''


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FunctionHost]:
    """The small app served on a free port."""
    with small_app(tmp_path, APP) as folder, FunctionHost(folder, port=0) as running:
        yield running


@pytest.mark.parametrize("route, content_type, body", [
    ("json", "application/json", b'{"ok": true}'),
    ("header", "text/css; charset=ascii", b"body{}"),
    ("default", "text/plain; charset=utf-8", b"plain"),
    ("html", "text/html; charset=latin-1", "<p>é</p>".encode("latin-1")),
    ("text", "text/plain; charset=utf-8", b"a string"),
])
def test_an_http_functions_mimetype_reaches_the_client_as_content_type(
    host: FunctionHost, route: str, content_type: str, body: bytes
) -> None:
    response = requests.get(f"{host.url}/api/{route}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.content == body


def test_the_functions_own_headers_stay_and_content_type_is_sent_once(host: FunctionHost) -> None:
    response = requests.get(f"{host.url}/api/json", timeout=10)
    assert response.headers["x-correlation-id"] == "c1"
    assert response.raw.headers.getlist("Content-Type") == ["application/json"]
    own = requests.get(f"{host.url}/api/header", timeout=10)
    assert own.raw.headers.getlist("Content-Type") == ["text/css; charset=ascii"]


@pytest.mark.parametrize("path, headers", [
    ("/api/locked", {"x-functions-key": "é"}),
    ("/api/locked?code=%C3%A9", {}),
    ("/api/locked?code=%ED%A0%80", {}),  # a lone surrogate, percent-encoded
    ("/api/locked?code=%E2%82%AC" + "x" * 40, {}),
    ("/admin/host/status", {"x-functions-key": "ü" * 43}),
    ("/runtime/webhooks/eventgrid?functionName=x&code=%C3%A9", {}),
])
def test_a_key_the_host_cannot_match_is_a_401_not_a_500(host: FunctionHost, path: str, headers: dict[str, str]) -> None:
    """`hmac.compare_digest` refuses a str that is not ASCII: a key such as `é` was a 500 from the local host."""
    method = requests.post if "webhooks" in path else requests.get
    response = method(f"{host.url}{path}", headers=headers, timeout=10)
    assert response.status_code == 401, response.text


def test_the_right_function_key_still_opens_a_function_route(host: FunctionHost) -> None:
    assert requests.get(f"{host.url}/api/locked", timeout=10).status_code == 401
    opened = requests.get(f"{host.url}/api/locked", headers={"x-functions-key": host.keys.function}, timeout=10)
    assert opened.status_code == 200 and opened.text == "opened"


def test_the_host_answers_without_nagles_delay_as_kestrel_does(host: FunctionHost) -> None:
    """The connections the host accepts have TCP_NODELAY (Kestrel's default): without it, a body written after its
    headers waited for the client's delayed ACK, about 40 ms on every answer on a kept-alive connection."""
    assert host._server is not None
    accepted: list[socket.socket] = []
    get_request = host._server.get_request

    def capture() -> tuple[socket.socket, object]:
        connection, address = get_request()
        accepted.append(connection)
        return connection, address

    host._server.get_request = capture  # type: ignore[method-assign]
    with requests.Session() as session:
        assert session.get(f"{host.url}/api/json", timeout=10).status_code == 200
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
