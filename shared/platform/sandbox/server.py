"""The sandbox's online endpoints over HTTP, on loopback.

`POST /endpoints/<workspace>/<endpoint>/score` with `{"inputs": [[...], ...]}` answers
`{"predictions": [...], "probabilities": [[...], ...]}` and names the deployment that
answered in the `azureml-model-deployment` header; send that header to pick a
deployment yourself (then nothing is mirrored), as with Azure ML.

Run it with `python -m shared.platform.sandbox.server --port 5080` (settings from the
environment), or in a thread with `running_server(platform)`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from shared.platform.port import NotFound, PlatformError, Transient, TryLater
from shared.platform.sandbox.platform import SandboxPlatform
from shared.platform.sandbox.scoring import ScoringFailed
from shared.platform.sandbox.store import Rejected

ROUTE = re.compile(r"^/endpoints/(?P<workspace>[^/]+)/(?P<endpoint>[^/]+)/score$")
DEPLOYMENT_HEADER = "azureml-model-deployment"
MAX_BODY_BYTES = 4 * 1024 * 1024
STATUS: list[tuple[type[PlatformError], HTTPStatus]] = [
    (NotFound, HTTPStatus.NOT_FOUND),
    (Rejected, HTTPStatus.BAD_REQUEST),
    (TryLater, HTTPStatus.TOO_MANY_REQUESTS),
    (ScoringFailed, HTTPStatus.INTERNAL_SERVER_ERROR),
    (Transient, HTTPStatus.SERVICE_UNAVAILABLE),
]
log = logging.getLogger(__name__)


class ScoringServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, platform: SandboxPlatform, host: str = "127.0.0.1", port: int = 0) -> None:
        self.platform = platform
        super().__init__((host, port), ScoringHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class ScoringHandler(BaseHTTPRequestHandler):
    server: ScoringServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        route = ROUTE.match(urlsplit(self.path).path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(length)
        if not route:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}; use /endpoints/<ws>/<ep>/score"})
            return
        try:
            request = json.loads(body)
        except ValueError as error:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON: {error}"})
            return
        if not isinstance(request, dict) or "inputs" not in request:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": 'the body must be {"inputs": [[numbers...], ...]}'})
            return
        try:
            deployment, outputs = self.server.platform.score(
                route["workspace"], route["endpoint"], request["inputs"], self.headers.get(DEPLOYMENT_HEADER)
            )
        except PlatformError as error:
            status = next(code for kind, code in [*STATUS, (PlatformError, 500)] if isinstance(error, kind))
            self._reply(HTTPStatus(status), {"error": str(error)})
            return
        self._reply(HTTPStatus.OK, outputs, {DEPLOYMENT_HEADER: deployment})

    def _reply(self, status: HTTPStatus, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


@contextlib.contextmanager
def running_server(platform: SandboxPlatform, host: str = "127.0.0.1", port: int = 0) -> Iterator[ScoringServer]:
    """Serve the platform's endpoints from a thread until the block ends."""
    server = ScoringServer(platform, host, port)
    thread = threading.Thread(target=server.serve_forever, name="sandbox-endpoints", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        platform.flush_metrics()


def main(argv: list[str] | None = None) -> int:
    from shared.settings import get_settings

    parser = argparse.ArgumentParser(description="Serve the sandbox's online endpoints on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every HTTP request at INFO
    platform = SandboxPlatform.from_settings(get_settings())
    server = ScoringServer(platform, args.host, args.port)
    log.info("sandbox endpoints listening on %s/endpoints/<workspace>/<endpoint>/score", server.url)
    # Stop on SIGTERM as on Ctrl+C, so that the last metrics are written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        platform.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
