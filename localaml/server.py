"""The local Azure ML service on a loopback HTTPS port."""

from __future__ import annotations

import json
import socketserver
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localaml.service import LocalAzureML
from localaml.tls import Certificates


def _handler_for(service: LocalAzureML) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle on, each answer waits for a delayed ACK.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = service.handle(self.command, self.path, body, dict(self.headers.items()))
            page = isinstance(reply.body, bytes)  # a page of the service's own (localaml/runhistory.py)
            data = reply.body if isinstance(reply.body, bytes) else (
                b"" if reply.body is None else json.dumps(reply.body).encode())
            self.send_response(reply.status)
            if not page:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve  # noqa: N815 - the base class's names

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the recorded requests are what the tests look at."""

    return Handler


@contextmanager
def serving(service: LocalAzureML, certificates: Certificates, port: int = 0) -> Iterator[LocalAzureML]:
    """Serve `service` over HTTPS on a loopback port (a free one by default) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(service))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    service.base_url = f"https://127.0.0.1:{server.server_address[1]}/"
    with in_thread(server, "local-azureml"):
        yield service


@contextmanager
def in_thread(server: socketserver.BaseServer, name: str) -> Iterator[None]:
    """Serve from a daemon thread until the block ends, then stop and close the server."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
