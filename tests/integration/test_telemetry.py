"""Telemetry to Application Insights: the real exporter against a local ingestion receiver.

An event goes through intake and the queue worker on Azurite (the ML platform is the unit tests'
fake, traced by the same wrapper `shared.bootstrap` puts on the real adapter; notifications go
through the real notifier to a signed webhook). The scenario runs in a child process with
`APPLICATIONINSIGHTS_CONNECTION_STRING` pointing at `IngestionReceiver`, which accepts the
exporter's envelopes at `/v2.1/track` as Application Insights does (JSON, gzip'd or not). The test
then checks the trace tree (operation and parent ids), the attributes, the decision log records
and the metrics that arrived.

The exporter's calls to Microsoft's own endpoints (statsbeat, the control plane) are turned off
here by their settings: only loopback is reached.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from devhost.receiver import Receiver
from tests.integration.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]
IKEY = "00000000-0000-0000-0000-000000000001"
# Keeps the exporter on loopback: no statsbeat or control-plane calls to Microsoft's endpoints.
OFFLINE = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}
MODEL, VERSION = "churn-model", "3"
WORKSPACE = "/subscriptions/0000/resourceGroups/ml/providers/Microsoft.MachineLearningServices/workspaces/dev"


class IngestionReceiver:
    """An Application Insights ingestion endpoint on loopback: keeps every envelope POSTed to /v2.1/track."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                receiver.paths.append(self.path)
                if self.path.rstrip("/").endswith("/v2.1/track"):
                    items = _envelopes(body)
                    receiver.envelopes.extend(items)
                    self._answer(200, {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})
                else:
                    self._answer(404, {"error": f"no such path {self.path}"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> IngestionReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={IKEY};IngestionEndpoint={self.url}"

    def of_type(self, base_type: str) -> list[dict[str, Any]]:
        return [item for item in self.envelopes if item.get("data", {}).get("baseType") == base_type]


def _envelopes(body: bytes) -> list[dict[str, Any]]:
    """A JSON array of envelopes, or one envelope per line (both are accepted by the service)."""
    text = body.decode("utf-8")
    try:
        parsed = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


@pytest.fixture
def ingestion() -> Iterator[IngestionReceiver]:
    with IngestionReceiver() as running:
        yield running


def run_scenario(azurite: Azurite, environment: dict[str, str]) -> dict[str, Any]:
    """Run `scenario()` below in a fresh interpreter; return what it printed (JSON)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("APPLICATIONINSIGHTS", "OTEL_"))}
    env.update(OFFLINE, AZURITE_CONNECTION=azurite.connection_string, **environment)
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.test_telemetry"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_one_trace_follows_an_event_from_intake_through_the_worker_to_platform_and_notifications(
    azurite: Azurite, ingestion: IngestionReceiver, receiver: Receiver
) -> None:
    result = run_scenario(azurite, {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
        "MLOPS_NOTIFY_WEBHOOK_URL": receiver.url + "/hooks/ops",
        "MLOPS_NOTIFY_WEBHOOK_SECRET": SECRET,
    })
    event_id = result["event_id"]
    assert result["traceparent"], "the work item carried the intake's trace context through the queue"
    assert all(path == "/v2.1/track" for path in ingestion.paths), ingestion.paths

    spans = {}
    for item in ingestion.of_type("RequestData") + ingestion.of_type("RemoteDependencyData"):
        base = item["data"]["baseData"]
        spans[base["id"]] = {
            "name": base["name"], "trace": item["tags"]["ai.operation.id"],
            "parent": item["tags"].get("ai.operation.parentId"), "properties": base.get("properties", {}),
            "type": item["data"]["baseType"],
        }
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span_id, found in spans.items():
        by_name.setdefault(found["name"], []).append({"id": span_id, **found})

    [intake] = by_name["intake"]
    [react] = by_name["react"]
    trace = intake["trace"]
    assert intake["parent"] is None, "intake starts the trace here (under the host's span in Azure)"
    assert react["trace"] == trace and react["parent"] == intake["id"], "react is the intake's child via the queue"
    assert intake["type"] == react["type"] == "RequestData", "both consume a message: requests in App Insights"
    assert result["traceparent"].split("-")[1] == trace and result["traceparent"].split("-")[2] == intake["id"]

    platform = [s for name, found in by_name.items() if name.startswith("platform.") for s in found
                if s["trace"] == trace]
    names = {s["name"] for s in platform}
    assert {"platform.get_model", "platform.submit_job", "platform.get_job", "platform.promote_model",
            "platform.get_endpoint", "platform.create_deployment"} <= names, names
    for call in platform:
        assert call["trace"] == trace and _ancestors(call, spans)[-1] == intake["id"], call
        assert call["type"] == "RemoteDependencyData"
    [registered] = by_name["platform.get_model"][:1]
    assert registered["properties"]["aml.model"] == MODEL and registered["properties"]["aml.version"] == VERSION
    [deploy] = by_name["platform.create_deployment"]
    assert deploy["properties"]["aml.endpoint"] == "churn" and deploy["properties"]["aml.workspace"] == "prod"

    notified = [s for name, found in by_name.items() if name.startswith("notify.") for s in found]
    assert {s["name"] for s in notified} >= {"notify.webhook", "notify.log"}
    for call in notified:
        assert call["trace"] == trace and react["id"] in _ancestors(call, spans)
        assert call["properties"]["aml.outcome"] == "sent"
    assert receiver.received, "the webhook really got the notifications"

    props = react["properties"]
    assert props["aml.event_id"] == event_id
    assert props["aml.event_type"] == "Microsoft.MachineLearningServices.ModelRegistered"
    assert (props["aml.model"], props["aml.version"]) == (MODEL, VERSION)
    assert props["aml.decision"] == "lifecycle:rolling_out", "the react span carries the last decision it made"
    assert (props["aml.rule"], props["aml.endpoint"]) == ("churn", "churn"), "from the rollout it started"
    assert float(props["aml.event_lag_seconds"]) >= 0
    assert intake["properties"]["aml.outcome"] == "queued"

    decisions = [item for item in ingestion.of_type("MessageData")
                 if item["data"]["baseData"].get("properties", {}).get("aml.decision")]
    by_decision = {item["data"]["baseData"]["properties"]["aml.decision"]: item for item in decisions}
    assert {"intake:queued", "test:submitted", "lifecycle:passed", "lifecycle:promoted", "rollout:start",
            "rollout:step"} <= set(by_decision), sorted(by_decision)
    for kind in ("intake:queued", "test:submitted", "lifecycle:promoted", "rollout:start"):
        record = by_decision[kind]
        assert record["tags"]["ai.operation.id"] == trace, f"{kind} is logged in the event's trace"
        assert record["data"]["baseData"]["properties"]["aml.event_id"] == event_id
    assert by_decision["lifecycle:promoted"]["data"]["baseData"]["properties"]["aml.model"] == MODEL

    [tick] = by_name["rollout_tick"]
    [traffic] = by_name["platform.set_traffic"]
    assert traffic["trace"] == tick["trace"] != trace and traffic["parent"] == tick["id"], "a tick is its own trace"
    step = by_decision["rollout:step"]
    assert step["tags"]["ai.operation.id"] == tick["trace"]
    step_props = step["data"]["baseData"]["properties"]
    assert (step_props["aml.endpoint"], step_props["aml.rule"], step_props["aml.model"], step_props["aml.version"]) \
        == ("churn", "churn", MODEL, VERSION)
    assert tick["properties"]["aml.decision"] == "rollout:step" and tick["properties"]["aml.endpoint"] == "churn"

    metrics = {}
    for item in ingestion.of_type("MetricData"):
        for metric in item["data"]["baseData"]["metrics"]:
            metrics.setdefault(metric["name"], []).append((metric["value"], item["data"]["baseData"]["properties"]))
    assert any(value == 1 and dims.get("aml.outcome") == "queued"
               and dims.get("aml.event_type", "").endswith("ModelRegistered")
               for value, dims in metrics["aml_reactor.events"])
    assert any(dims.get("aml.decision_kind") == "test" for _, dims in metrics["aml_reactor.decisions"])
    assert any(dims.get("aml.action") == "step" for _, dims in metrics["aml_reactor.rollout.steps"])
    # A gauge reports its last value at every export (the flush, then the exit's): one value, maybe twice.
    assert {(value, dims["aml.deployment"]) for value, dims in metrics["aml_reactor.rollout.weight"]} == {
        (100, f"{MODEL}-v{VERSION}")
    }
    lags = {value for value, _ in metrics["aml_reactor.event_lag"]}
    assert len(lags) == 1 and 0 <= lags.pop() < 120, "seconds from the event's time to the end of its reaction"

    text = json.dumps(ingestion.envelopes)
    assert SECRET not in text and "/hooks/ops" not in text, "no webhook secret or URL leaves the app"


def test_without_the_setting_nothing_of_opentelemetry_is_imported_or_sent(azurite: Azurite,
                                                                          ingestion: IngestionReceiver) -> None:
    result = run_scenario(azurite, {})
    assert result["traceparent"] is None, "the work item is as it always was"
    assert result["otel_modules"] == [], result["otel_modules"]
    assert ingestion.envelopes == []


def _ancestors(span: dict[str, Any], spans: dict[str, dict[str, Any]]) -> list[str]:
    """The span's parent ids up to the root."""
    chain, parent = [], span["parent"]
    while parent:
        chain.append(parent)
        parent = spans.get(parent, {}).get("parent")
    return chain


def scenario() -> None:
    """In the child process: one ModelRegistered event through intake and the worker, then flush."""
    from shared import bootstrap
    from shared.adapters import telemetry
    from shared.adapters.storage.clients import queue_service
    from shared.adapters.storage.queue import WorkQueue
    from shared.domain.policy import parse_policy
    from shared.domain.work import WorkItem
    from shared.reactor import intake, reactions, worker
    from shared.settings import Settings
    from tests.unit.test_isolation_fakes import POLICY, FakePlatform

    suffix = uuid.uuid4().hex[:8]
    environ = {"AzureWebJobsStorage": os.environ["AZURITE_CONNECTION"], "MLOPS_STATE_CONTAINER": f"state-{suffix}",
               "MLOPS_WORKSPACES": f"dev={WORKSPACE}"}
    for name in ("MLOPS_NOTIFY_WEBHOOK_URL", "MLOPS_NOTIFY_WEBHOOK_SECRET"):
        if name in os.environ:
            environ[name] = os.environ[name]
    settings = Settings.from_environ(environ)
    bootstrap.build_platform = lambda _settings: FakePlatform()  # the port the app's own wiring then wraps
    services = bootstrap.Services.from_settings(settings)
    services._policy = parse_policy(POLICY)
    services.work_queue = WorkQueue(queue_service(settings), f"work-{suffix}")
    state = services.state

    event_id = str(uuid.uuid4())
    event = json.loads((ROOT / "tests/fixtures/aml-events/docs_eventgrid_schema/model_registered.json").read_text())[0]
    event.update(id=event_id, subject=f"models/{MODEL}:{VERSION}", topic=WORKSPACE,
                 eventTime=datetime.now(UTC).isoformat())
    event["data"].update(ModelName=MODEL, ModelVersion=VERSION)

    assert intake.receive(event, state, services.work_queue, clock=services.clock).value == "queued"
    [message] = services.work_queue.client.receive_messages(max_messages=1)
    item = json.loads(message.content)
    worker.process(WorkItem.model_validate(item), services)
    with telemetry.span("rollout_tick", kind="consumer"):  # as the timer's handler runs it
        reactions.tick_rollouts(services)
    telemetry.flush()
    otel = sorted(name for name in sys.modules if name.startswith(("opentelemetry", "azure.monitor")))
    print(json.dumps({"event_id": event_id, "traceparent": item.get("traceparent"), "otel_modules": otel}))


if __name__ == "__main__":
    scenario()
