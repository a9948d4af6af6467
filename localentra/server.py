"""The stand-in on a loopback HTTPS port: TLS only, as Entra's endpoints are.

Each connection is served by its own thread, its TLS handshake done there (not in the
accepting thread, so that a client that never completes one holds up nobody), with a read
timeout. A body longer than `MAX_BODY` is refused (413, connection closed); one up to
`DRAIN_LIMIT` is read and dropped first, so that the client, still sending, reads the
answer rather than a reset connection. A
`Content-Length` that is no number is a 400, and every method reaches the service, which
answers the ones an endpoint does not take: nothing a client sends makes a 5xx.
"""

from __future__ import annotations

import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localaml.tls import Certificates
from localentra.errors import EntraError, Reply
from localentra.protocol import MAX_BODY
from localentra.service import LocalEntra

DRAIN_LIMIT = 1 << 20


def _handler_for(entra: LocalEntra) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = 30

        def handle_one_request(self) -> None:
            """BaseHTTPRequestHandler's, with every method going to `_serve` (no 501 for an unknown one)."""
            try:
                self.raw_requestline = self.rfile.readline(65537)
                if len(self.raw_requestline) > 65536:
                    self.requestline, self.request_version, self.command = "", "", ""
                    self.send_error(414)
                    return
                if not self.raw_requestline:
                    self.close_connection = True
                    return
                if not self.parse_request():
                    return
                self._serve()
                self.wfile.flush()
            except (TimeoutError, OSError):
                self.close_connection = True

        def _serve(self) -> None:
            length_header = self.headers.get("Content-Length") or "0"
            if not length_header.isdigit():
                self._send(Reply.json(400, EntraError("invalid_request", 9002313).body(entra.base_url)), close=True)
                return
            length = int(length_header)
            if length > MAX_BODY:
                if length <= DRAIN_LIMIT:
                    self.rfile.read(length)
                self._send(Reply.json(413, EntraError("invalid_request", 9002313).body(entra.base_url)), close=True)
                return
            body = self.rfile.read(length) if length else b""
            self._send(entra.handle(self.command, self.path, dict(self.headers.items()), body))

        def _send(self, reply: Reply, close: bool = False) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                if "\r" not in value and "\n" not in value:  # never a header split by a value
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD" and reply.status not in (204, 304):
                self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests look at answers, not logs."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that drops its connection or fails its TLS handshake is no event."""


@contextmanager
def serving(entra: LocalEntra, certificates: Certificates, port: int = 0) -> Iterator[LocalEntra]:
    """Serve `entra` over HTTPS on a loopback port (a free one by default) until the block ends."""
    server = _Server(("127.0.0.1", port), _handler_for(entra))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    entra.base_url = f"https://127.0.0.1:{server.server_address[1]}"
    with _in_thread(server, "local-entra"):
        yield entra


@contextmanager
def _in_thread(server: socketserver.BaseServer, name: str) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
