"""A local host listens to the trigger kinds it is given: `python -m devhost` serves HTTP, webhooks and timers in
one process and runs the queue triggers in another (`devhost.split`), so each must take only its own."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.__main__ import kinds
from devhost.host import ALL_KINDS, FunctionHost, trigger_kinds
from devhost.split import FRONT_KINDS, QUEUE_KINDS
from tests.unit.small_apps import small_app

APP = '''
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello")
def hello(req: func.HttpRequest) -> str:
    return "hello"


@app.event_grid_trigger(arg_name="event")
def events(event: func.EventGridEvent) -> None:
    pass


@app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    pass


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *")
def tick(timer: func.TimerRequest) -> None:
    pass


@app.blob_trigger(arg_name="blob", path="inbox/{name}", connection="AzureWebJobsStorage",
                  source=func.BlobSource.EVENT_GRID)
def landed(blob: func.InputStream) -> None:
    pass
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    with small_app(tmp_path, APP) as folder:
        yield folder


def listened(host: FunctionHost) -> list[str]:
    return sorted(name for name, function in host.functions.items() if host.listens_to(function))


def test_the_queue_process_takes_only_the_queue_triggers_and_serves_no_http(app_dir: Path) -> None:
    host = FunctionHost(app_dir, port=0, triggers=QUEUE_KINDS)
    assert listened(host) == ["work"]
    assert not host.serves_http
    assert host.handle("GET", "/api/hello", {}, b"").status == 404, "no HTTP function runs here"
    assert sorted(host.functions) == ["events", "hello", "landed", "tick", "work"], "it indexes the whole app"


def test_the_front_process_takes_every_trigger_but_the_queue_ones(app_dir: Path) -> None:
    host = FunctionHost(app_dir, port=0, triggers=FRONT_KINDS)
    assert listened(host) == ["events", "hello", "landed", "tick"]
    assert host.serves_http
    assert host.handle("GET", "/api/hello", {}, b"").body == b"hello"


def test_by_default_a_host_takes_every_trigger(app_dir: Path) -> None:
    assert listened(FunctionHost(app_dir, port=0)) == ["events", "hello", "landed", "tick", "work"]


def test_an_event_grid_webhook_for_a_host_without_event_grid_triggers_is_a_404(app_dir: Path) -> None:
    host = FunctionHost(app_dir, port=0, triggers={"http", "timer"})
    url = f"/runtime/webhooks/eventgrid?functionName=events&code={host.keys.eventgrid_extension}"
    reply = host.handle("POST", url, {"aeg-event-type": "Notification"}, json.dumps([]).encode())
    assert reply.status == 404


@pytest.mark.parametrize("triggers, status", [(FRONT_KINDS, 200), (QUEUE_KINDS, 404)])
def test_the_blob_webhook_finds_its_function_by_kind(app_dir: Path, triggers: frozenset[str], status: int) -> None:
    """Regression: the blobs webhook looked its kind up by the extension's name ("blobs"): a KeyError, a 500."""
    host = FunctionHost(app_dir, port=0, triggers=triggers)
    url = f"/runtime/webhooks/blobs?functionName=Host.Functions.landed&code={host.keys.blobs_extension}"
    reply = host.handle("OPTIONS", url, {"webhook-request-origin": "eventgrid.azure.net"}, b"")
    assert reply.status == status, reply.body


def test_unknown_or_no_trigger_kinds_are_refused_naming_them() -> None:
    assert trigger_kinds(["queue", "http"]) == {"queue", "http"}
    assert FRONT_KINDS | QUEUE_KINDS == ALL_KINDS
    with pytest.raises(ValueError, match="unknown trigger kind 'queues'"):
        trigger_kinds(["http", "queues"])
    with pytest.raises(ValueError, match="no trigger kind given"):
        trigger_kinds([])
    assert kinds("http, timer") == {"http", "timer"}
    with pytest.raises(argparse.ArgumentTypeError, match="'cron'"):
        kinds("timer,cron")
