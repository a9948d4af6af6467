"""A CONNECT proxy that stands in for DNS: storage account host names lead to the local storage account.

The SDK builds a datastore's address from its account name and the cloud's storage suffix
(`https://<account>.blob.<suffix>`, azure-ai-ml `STORAGE_ACCOUNT_URLS`), so those names
must reach the service's Azurite. Clients find this proxy through the standard
`HTTPS_PROXY` / `NO_PROXY` settings, which requests (and so azure-core) honour; it only
tunnels to hosts under the local suffix, and only to the storage account's port.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
from collections.abc import Iterator

from localaml.datastores import STORAGE_SUFFIX
from localaml.server import in_thread

BUFFER = 256 * 1024


class _Tunnel(socketserver.StreamRequestHandler):
    server: ProxyServer

    def handle(self) -> None:
        request = self.rfile.readline(8192).decode("latin-1").split()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # the rest of the request's headers
        if len(request) != 3 or request[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host = request[1].rsplit(":", 1)[0].lower()
        if not host.endswith("." + STORAGE_SUFFIX):
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.target_port), timeout=10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        self.wfile.flush()
        with upstream:
            _pipe(self.connection, upstream)


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    sockets = [client, upstream]
    for each in sockets:
        each.settimeout(None)
    while True:
        readable, _, failed = select.select(sockets, [], sockets, 300)
        if failed or not readable:
            return
        for source in readable:
            data = source.recv(BUFFER)
            if not data:
                return
            (upstream if source is client else client).sendall(data)


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        super().__init__(("127.0.0.1", port), _Tunnel)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def running_proxy(target_port: int, port: int = 0) -> Iterator[ProxyServer]:
    """Tunnel `*.<suffix>:443` to the loopback `target_port` until the block ends."""
    server = ProxyServer(target_port, port)
    with in_thread(server, "localaml-proxy"):
        yield server
