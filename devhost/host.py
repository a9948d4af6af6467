"""A local Functions host for machines without Core Tools.

It serves the app's own functions from their registered metadata (no second list of
routes): HTTP triggers under `/api` with keys by auth level, the Event Grid and blob
extension webhooks under `/runtime/webhooks/`, queue triggers polling Azurite, timers
on their NCRONTAB schedules, and Core Tools' admin routes to run a non-HTTP function
(`POST /admin/functions/<name>`) and read the host status.

A host listens to the trigger kinds it is given (`TRIGGER_KINDS`; all by default): `python -m devhost`
runs the queue triggers in a process of their own (`devhost.split`), as Azure runs them apart from the
HTTP front end. Every process indexes the whole app, as every instance in Azure does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.http import HttpResponseConverter
from azure.functions.queue import QueueMessage as QueueMessageBinding
from azure.functions.timer import TimerRequest

from devhost import blobs, webhooks
from devhost.indexing import IndexedFunction, IndexingError, index_function_app, load_app_module
from devhost.keys import HostKeys
from devhost.listener import Listener
from devhost.queues import QueueListener, QueueOptions, queue_client
from devhost.timers import TimerSchedule
from devhost.webhooks import Reply

log = logging.getLogger("devhost")
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default maxRequestBodySize
SETTING_REFERENCE = re.compile(r"%([A-Za-z0-9_]+)%")
RESOLVED_PROPERTIES = ("queueName", "path", "schedule")
TRIGGER_KINDS = {"http": "httpTrigger", "eventgrid": "eventGridTrigger", "blob": "blobTrigger",
                 "timer": "timerTrigger", "queue": "queueTrigger"}
"""The trigger kinds a host can be told to listen to, and the binding type of each."""
ALL_KINDS = frozenset(TRIGGER_KINDS)
SERVED_KINDS = frozenset({"http", "eventgrid", "blob"})
"""The kinds that arrive over the host's HTTP server (routes and extension webhooks)."""
WEBHOOK_KINDS = {"eventgrid": "eventgrid", "blobs": "blob"}
"""The extension webhooks (`/runtime/webhooks/<name>`) and the trigger kind each delivers to."""
WORKER_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""The Python worker's pool for synchronous functions: PYTHON_THREADPOOL_THREAD_COUNT unset on Python 3.9+
leaves it to ThreadPoolExecutor's default (Azure/azure-functions-python-worker#890)."""


def trigger_kinds(names: Iterable[str]) -> frozenset[str]:
    """The kinds named; ValueError naming any that is not one of `TRIGGER_KINDS`, or none at all."""
    kinds = frozenset(names)
    unknown = sorted(kinds - TRIGGER_KINDS.keys())
    if unknown or not kinds:
        what = f"unknown trigger kind {', '.join(map(repr, unknown))}" if unknown else "no trigger kind given"
        raise ValueError(f"{what}: expected some of {', '.join(TRIGGER_KINDS)}")
    return kinds


def load_local_settings(app_dir: Path) -> None:
    """Like Core Tools: `local.settings.json` Values fill the environment, never override it."""
    path = app_dir / "local.settings.json"
    if path.exists():
        for name, value in json.loads(path.read_text()).get("Values", {}).items():
            os.environ.setdefault(name, str(value))


def resolve_bindings(function: IndexedFunction, environ: Mapping[str, str]) -> IndexedFunction:
    """The function with `%SETTING%` in its bindings' names replaced by app settings, as the host does at start.

    The host resolves the properties that name what a trigger listens to (`queueName`, a blob
    `path`, a timer `schedule`); one that refers to a setting that is unset or empty fails the
    function's indexing with the setting's name, so the host does not start with it.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise IndexingError(
                f"Error indexing method 'Functions.{function.name}': '%{name}%' does not resolve to a value "
                f"(set the app setting {name})"
            )
        return environ[name]

    def resolved(binding: dict[str, Any]) -> dict[str, Any]:
        return {
            key: SETTING_REFERENCE.sub(lookup, value) if key in RESOLVED_PROPERTIES and isinstance(value, str)
            else value
            for key, value in binding.items()
        }

    return dataclasses.replace(
        function, trigger=resolved(function.trigger), bindings=[resolved(binding) for binding in function.bindings]
    )


def host_settings(host_json: dict[str, Any], environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """host.json with `AzureFunctionsJobHost__a__b` app settings applied, as the host does."""
    prefix = "AzureFunctionsJobHost__"
    for name, value in environ.items():
        if name.startswith(prefix):
            *parents, leaf = name.removeprefix(prefix).split("__")
            node = host_json
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return host_json


class HttpRoute:
    """An HTTP trigger's route template (`admin/rollouts/{endpoint}`, `{*rest}`) as a regex."""

    def __init__(self, function: IndexedFunction) -> None:
        self.function = function
        template = function.trigger.get("route") or function.name
        self.methods = {str(method).upper() for method in function.trigger.get("methods") or []}
        self.auth_level = str(function.trigger.get("authLevel", "FUNCTION")).lower()
        pattern = re.escape(template.strip("/"))
        pattern = re.sub(r"\\\{\\\*(\w+)\\\}", r"(?P<\1>.*)", pattern)
        pattern = re.sub(r"\\\{(\w+)(?::[^}]*)?\\\?\\\}", r"(?P<\1>[^/]*)", pattern)
        pattern = re.sub(r"\\\{(\w+)(?::[^}\\]*)?\\\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(f"^{pattern}$")

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path.strip("/"))
        return found.groupdict() if found else None


class FunctionHost:
    """Loads the app from `app_dir` and serves it on loopback until stopped.

    `triggers`: the kinds it listens to (`TRIGGER_KINDS`). It opens its HTTP server (routes, webhooks and
    the admin routes) only with one of `SERVED_KINDS`; a route or webhook of a kind it does not listen to
    is a 404, as on an instance that does not host it.
    """

    def __init__(self, app_dir: Path, port: int = 7071, keys: HostKeys | None = None,
                 triggers: Iterable[str] = ALL_KINDS) -> None:
        self.triggers = trigger_kinds(triggers)
        load_local_settings(app_dir)
        self.app_dir, self.port = app_dir, port
        self.keys = keys or HostKeys.generate()
        self.host_json = host_settings(json.loads((app_dir / "host.json").read_text()), os.environ)
        indexed = index_function_app(load_app_module(app_dir))
        self.functions = {f.name: resolve_bindings(f, os.environ) for f in indexed}
        self.routes = [HttpRoute(f) for f in self.functions.values() if f.trigger_type == "httpTrigger"] \
            if "http" in self.triggers else []
        self._listeners: list[Listener] = []
        self._server: ThreadingHTTPServer | None = None
        threads = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or WORKER_THREADS)
        self._worker_pool = ThreadPoolExecutor(threads, thread_name_prefix="worker")
        """Runs the events of one Event Grid delivery at once (each request runs on its own server thread)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def serves_http(self) -> bool:
        return bool(self.triggers & SERVED_KINDS)

    def listens_to(self, function: IndexedFunction) -> bool:
        """Whether this host runs `function` when its trigger fires."""
        return any(TRIGGER_KINDS[kind] == function.trigger_type for kind in self.triggers)

    def start(self) -> None:
        if self.serves_http:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
            self._server.daemon_threads = True
            self.port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, name="devhost-http", daemon=True).start()
        options = QueueOptions.from_host_json(self.host_json)
        for function in self.functions.values():
            listener = self._listener(function, options) if self.listens_to(function) else None
            if listener:
                listener.start()
                self._listeners.append(listener)
        listened = sorted(name for name, function in self.functions.items() if self.listens_to(function))
        where = f"on {self.url}" if self.serves_http else "without HTTP"
        log.info("Host started %s (%s triggers) with functions: %s", where, ", ".join(sorted(self.triggers)),
                 ", ".join(listened))

    def stop(self) -> None:
        for listener in self._listeners:  # all stop polling at once, then each finishes its work
            listener.request_stop()
        for listener in self._listeners:
            listener.stop()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        self._worker_pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> FunctionHost:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _listener(self, function: IndexedFunction, options: QueueOptions) -> Listener | None:
        trigger = function.trigger
        if function.trigger_type == "queueTrigger":
            connection = os.environ[trigger.get("connection") or "AzureWebJobsStorage"]
            name = trigger["queueName"]
            client, poison = queue_client(connection, name), queue_client(connection, name + "-poison")
            return QueueListener(function.name, client, poison, self.invoker(function), options)
        if function.trigger_type == "timerTrigger":
            run_on_startup = bool(trigger.get("runOnStartup"))
            return TimerSchedule(function.name, trigger["schedule"], self.invoker(function), run_on_startup)
        return None

    def invoker(self, function: IndexedFunction) -> Callable[[Any], Any]:
        """A callable that runs the function with its trigger's binding value."""
        trigger_name = function.trigger["name"]

        def run(value: Any) -> Any:
            log.info("Executing 'Functions.%s'", function.name)
            result = function.code(**{trigger_name: value})
            log.info("Executed 'Functions.%s' (Succeeded)", function.name)
            return result

        return run

    # Requests -------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(url)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        key = headers.get("x-functions-key") or query.get("code")
        path = parts.path
        if path.startswith("/api/"):
            return self._http_trigger(method, url, path.removeprefix("/api/"), query, headers, body, key)
        if path in ("/runtime/webhooks/eventgrid", "/runtime/webhooks/blobs"):
            extension = path.rsplit("/", 1)[1]
            if not self.keys.allows_extension(extension, key):
                return Reply.text(401, "a system key for the extension is required (code=...)")
            return self._webhook(extension, method, query.get("functionName", ""), headers, body)
        if path == "/admin/host/status":
            if not self.keys.allows("admin", key):
                return Reply.text(401, "the master key is required")
            return Reply.json(200, {"state": "Running", "functions": sorted(self.functions)})
        if path.startswith("/admin/functions/") and method == "POST":
            if not self.keys.allows("admin", key):
                return Reply.text(401, "the master key is required")
            return self._run_non_http(path.removeprefix("/admin/functions/"), body)
        return Reply.text(404, f"no route for {path}")

    def _http_trigger(
        self, method: str, url: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
        key: str | None,
    ) -> Reply:
        for route in self.routes:
            params = route.match(path)
            if params is None or (route.methods and method not in route.methods):
                continue
            if not self.keys.allows(route.auth_level, key):
                return Reply(401)
            request = func.HttpRequest(
                method=method, url=self.url + url, headers=headers, params=query, route_params=params, body=body
            )
            try:
                response = self.invoker(route.function)(request)
            except Exception:
                log.exception("Executed 'Functions.%s' (Failed)", route.function.name)
                return Reply(500)
            if isinstance(response, func.HttpResponse):
                return _http_reply(response)
            return Reply.text(200, str(response))
        return Reply.text(404, f"no function serves /api/{path} for {method}")

    def _webhook(self, extension: str, method: str, name: str, headers: dict[str, str], body: bytes) -> Reply:
        function = self.functions.get(name.removeprefix("Host.Functions."))
        expected = TRIGGER_KINDS[WEBHOOK_KINDS[extension]]
        if function is None or function.trigger_type != expected or not self.listens_to(function):
            return Reply.text(404, f"no {expected} function named {name!r}")
        if method == "OPTIONS":
            return webhooks.abuse_protection(headers)
        if method != "POST":
            return Reply.text(405, "POST or OPTIONS")
        run = self.invoker(function)
        if extension == "eventgrid":
            return webhooks.deliver(headers, body, lambda event: run(_event_grid_value(event)), self._worker_pool)
        return webhooks.deliver(headers, body, lambda event: run(blobs.binding_value(function, event)),
                                self._worker_pool)

    def _run_non_http(self, name: str, body: bytes) -> Reply:
        function = self.functions.get(name)
        if function is None or function.trigger_type not in ("timerTrigger", "queueTrigger"):
            return Reply.text(404, f"no timer or queue function named {name!r}")
        try:
            text = str(json.loads(body or b"{}").get("input", ""))
        except (ValueError, AttributeError):
            return Reply.text(400, 'expected a JSON body like {"input": "..."}')
        value: Any = (
            QueueMessageBinding(id="admin", body=text.encode(), dequeue_count=1)
            if function.trigger_type == "queueTrigger" else TimerRequest()
        )
        threading.Thread(target=self.invoker(function), args=(value,), daemon=True).start()
        return Reply(202)


def _http_reply(response: func.HttpResponse) -> Reply:
    """The answer the Functions host sends for an `HttpResponse`, with the headers the Python worker gives it:
    `Content-Type` from `mimetype` and `charset` unless the function set the header itself."""
    datum = HttpResponseConverter.encode(response, expected_type=None)
    headers = {name: value.value for name, value in datum.value["headers"].items()}
    if datum.value["cookies"]:  # the worker carries them apart; one Set-Cookie is what a Reply can hold
        headers["Set-Cookie"] = datum.value["cookies"][0].output(header="").strip()
    return Reply(response.status_code, response.get_body(), headers)


def _event_grid_value(event: dict[str, Any]) -> Any:
    """The binding value the Python worker builds for an Event Grid trigger."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata={})


def _handler(host: FunctionHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        """TCP_NODELAY, as Kestrel (the Functions host's server) sets by default
        (https://learn.microsoft.com/dotnet/api/microsoft.aspnetcore.server.kestrel.kestrelserveroptions.nodelay).
        Without it the body, written after the headers, waited for the client's delayed ACK: about 40 ms added to
        every answer with a body on a kept-alive connection."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(Reply.text(413, "request body too large"))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                reply = host.handle(self.command, self.path, headers, body)
            except Exception:
                log.exception("host error on %s %s", self.command, self.path)
                reply = Reply(500)
            self._reply(reply)

        def _reply(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
