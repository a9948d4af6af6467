"""A local webhook receiver: the ops end of the notifications, for the demo and the tests.

A real HTTP server on loopback. It accepts a POST on any path, checks Standard Webhooks
signatures when it knows the secret, keeps what it received (served as JSON at
`GET /received`), and can answer a scripted sequence of statuses (for example 503, then
429 with Retry-After: 1) before it answers 200 again.

    python -m devhost.receiver --port 7072   # $MLOPS_NOTIFY_WEBHOOK_SECRET, if set, checks signatures

prints one line per notification it receives.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

SIGNATURE_TOLERANCE = 300  # seconds either side, as the Standard Webhooks libraries do


@dataclass(frozen=True)
class Reply:
    """A scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and what the receiver answered."""

    path: str
    headers: dict[str, str]
    body: Any
    signature_valid: bool | None  # None: not signed, or the receiver has no secret to check it
    status: int
    at: float  # the receiver's monotonic clock, to measure waits between attempts


class Receiver:
    """Runs the receiver on a free loopback port (or `port`) for the length of a `with` block."""

    def __init__(self, port: int = 0, secret: str | None = None, echo: bool = False) -> None:
        self._secret = secret
        self._echo = echo
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str | None, collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted(self, path: str | None = None) -> list[Received]:
        """The requests answered with a 2xx (on `path` when given)."""
        return [r for r in self.received if 200 <= r.status < 300 and (path is None or _path(r.path) == path)]

    def script(self, *replies: Reply | int, path: str | None = None) -> None:
        """Answer the next requests (on `path`, or on any path) with these, then 200."""
        with self._lock:
            self._scripts[path].extend(reply if isinstance(reply, Reply) else Reply(reply) for reply in replies)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._scripts.clear()

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take(self, raw_path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Record one POST and choose its answer."""
        with self._lock:
            queue = self._scripts.get(_path(raw_path)) or self._scripts.get(None)
            reply = queue.popleft() if queue else Reply()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        checkable = self._secret is not None and "webhook-signature" in headers
        valid = verify(self._secret, headers, raw) if checkable else None
        received = Received(raw_path, headers, body, valid, reply.status, time.monotonic())
        with self._lock:
            self._received.append(received)
        if self._echo:
            print(describe(received), flush=True)
        return reply


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = receiver._take(self.path, headers, raw)
            self._answer(reply.status, {"received": 200 <= reply.status < 300}, reply.headers)

        def do_GET(self) -> None:
            if _path(self.path) == "/received":
                self._answer(200, [asdict(r) for r in receiver.received])
            else:
                self._answer(404, {"error": "only GET /received is served"})

        def _answer(self, status: int, document: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the receiver reports what it received, not each request line."""

    return Handler


def verify(secret: str | None, headers: dict[str, str], body: bytes) -> bool:
    """Check a Standard Webhooks signature as a consumer would: any `v1` entry matches, timestamp recent."""
    msg_id, stamp, signatures = (headers.get(f"webhook-{name}") for name in ("id", "timestamp", "signature"))
    if not (secret and msg_id and stamp and signatures and stamp.isdigit()):
        return False
    if abs(time.time() - int(stamp)) > SIGNATURE_TOLERANCE:
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    entries = (entry.partition(",") for entry in signatures.split())
    return any(version == "v1" and hmac.compare_digest(value, expected) for version, _, value in entries)


TEAMS_SEVERITY = {"Default": "info", "Warning": "warning", "Attention": "error"}  # adapters/notify/teams.py COLOR
SLACK_SEVERITY = {":information_source:": "info", ":warning:": "warning", ":rotating_light:": "error"}  # ICON


@dataclass(frozen=True)
class Summary:
    """What a notification says at a glance, whichever channel format it came in."""

    channel: str
    kind: str
    severity: str  # info, warning or error; "?" when the format does not carry it
    title: str


def summary(body: Any) -> Summary | None:
    """The channel, kind, severity and title of a notification in any of the app's channel formats, or None."""
    if isinstance(body, list) and body and isinstance(body[0], dict) and "specversion" in body[0]:
        data = body[0].get("data") or {}
        return Summary("eventgrid", str(data.get("kind", body[0].get("type"))), str(data.get("severity", "?")),
                       str(data.get("title", "")))
    if not isinstance(body, dict):
        return None
    if body.get("type") == "message" and body.get("attachments"):
        items = {item.get("id"): item for item in body["attachments"][0]["content"].get("body", [])}
        title = items.get("title", {})
        return Summary("teams", str(items.get("meta", {}).get("text", "")).split(" · ")[0],
                       TEAMS_SEVERITY.get(str(title.get("color")), "?"), str(title.get("text", "")))
    if "blocks" in body:
        blocks = {block.get("block_id"): block for block in body["blocks"]}
        meta = blocks.get("meta", {}).get("elements", [{}])[0].get("text", "")
        icon = str(blocks.get("summary", {}).get("text", {}).get("text", "")).split(" ")[0]
        # Slack shows the severity as the summary's icon; a notification without a summary has none.
        return Summary("slack", str(meta).split(" · ")[0], SLACK_SEVERITY.get(icon, "?"),
                       str(blocks.get("title", {}).get("text", {}).get("text", "")))
    if isinstance(body.get("data"), dict) and "type" in body:
        return Summary("webhook", str(body["type"]), str(body["data"].get("severity", "?")),
                       str(body["data"].get("title", "")))
    return None


def describe(received: Received) -> str:
    """One line: time, channel, kind, severity, title, and the signature check when the request was signed."""
    try:
        found = summary(received.body)
    except (AttributeError, IndexError, KeyError, TypeError):  # a payload of another shape
        found = None
    found = found or Summary("?", "?", "?", f"unrecognised payload on {received.path}")
    check = {None: "", True: "  [signature ok]", False: "  [SIGNATURE INVALID]"}[received.signature_valid]
    status = "" if 200 <= received.status < 300 else f"  (answered {received.status})"
    return (f"{datetime.now():%H:%M:%S} {found.channel:<9} {found.kind:<20} {found.severity:<7} "
            f"{found.title}{check}{status}")


def _path(raw_path: str) -> str:
    return urlsplit(raw_path).path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devhost.receiver", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7072)
    parser.add_argument(
        "--secret",
        default=os.environ.get("MLOPS_NOTIFY_WEBHOOK_SECRET"),
        help="the webhook channel's whsec_ secret, to check signatures (default: $MLOPS_NOTIFY_WEBHOOK_SECRET)",
    )
    args = parser.parse_args(argv)
    with Receiver(args.port, args.secret, echo=True) as receiver:
        print(f"receiving notifications on {receiver.url} (GET {receiver.url}/received lists them)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
