"""shared.adapters.telemetry: no-ops without the setting; with it, spans, trace context through work items,
decision records and metrics, checked on the OpenTelemetry SDK's in-memory exporter and reader.

The exporter to Application Insights itself is exercised in tests/integration/test_telemetry.py.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared.adapters import telemetry
from shared.domain.ports import DeploymentSpec, ModelVersion
from shared.domain.records import AuditEntry, HistoryAction, RolloutEntry
from tests.unit.test_isolation_fakes import FakePlatform
from tests.unit.test_lifecycle_machine import NOW, rollout

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Sdk:
    spans: Any
    metrics: Any

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[tuple[float, dict[str, Any]]]:
        data = self.metrics.get_metrics_data()
        return [
            (point.value if hasattr(point, "value") else point.sum, dict(point.attributes))
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == name
            for point in metric.data.data_points
        ]


_SDK: Sdk | None = None


def _sdk() -> Sdk:
    """The process's SDK providers with in-memory exporters (OpenTelemetry's globals can be set only once)."""
    global _SDK
    if _SDK is None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _SDK = Sdk(spans, reader)
    return _SDK


@pytest.fixture
def off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(telemetry.CONNECTION_SETTING, raising=False)
    monkeypatch.setattr(telemetry, "_state", telemetry._UNSET)


@pytest.fixture
def on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sdk]:
    """Telemetry on, over an SDK tracer provider already in place (as the Functions worker may leave it):
    `_configure` then keeps it and makes the app's instruments only."""
    sdk = _sdk()
    sdk.spans.clear()
    monkeypatch.setenv(telemetry.CONNECTION_SETTING, "InstrumentationKey=00000000-0000-0000-0000-000000000000")
    monkeypatch.setattr(telemetry, "_state", telemetry._UNSET)
    assert telemetry.enabled()
    yield sdk


def by_name(sdk: Sdk) -> dict[str, Any]:
    return {span.name: span for span in sdk.finished()}


# Without the setting -------------------------------------------------------------------------------------


def test_without_the_setting_every_helper_is_a_no_op(off: None) -> None:
    platform = FakePlatform()
    item = {"key": "k", "event": {"id": "e"}}

    assert not telemetry.enabled()
    with telemetry.span("intake", event_id="e") as span:
        span.set(outcome="queued")
        assert span is telemetry.NO_SPAN
    assert telemetry.carry(item) is item, "the work item is sent as it always was"
    assert telemetry.traced_platform(platform) is platform  # type: ignore[arg-type]
    telemetry.audited(AuditEntry(correlation_id="e", subject="s", action="intake", outcome="queued"))
    telemetry.rollout_progress(rollout(), [RolloutEntry(time=NOW, action=HistoryAction.STEP, actor="timer", reason="")])
    telemetry.count_event("t", "queued")
    telemetry.flush()


def test_without_the_setting_the_app_imports_nothing_of_opentelemetry() -> None:
    script = (
        "import json, sys, function_app\n"
        "from shared.adapters import telemetry\n"
        "with telemetry.span('intake'):\n"
        "    telemetry.carry({})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor')))))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


# Spans and trace context ---------------------------------------------------------------------------------


def test_a_work_item_carries_the_intakes_trace_to_the_worker(on: Sdk) -> None:
    with telemetry.span("intake", kind="consumer", event_id="e-1", model="m"):
        item = telemetry.carry({"key": "k"})
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[13]", item[telemetry.TRACEPARENT])

    with telemetry.span("react", parent=item[telemetry.TRACEPARENT], kind="consumer"):
        pass
    spans = by_name(on)
    intake, react = spans["intake"], spans["react"]
    assert react.context.trace_id == intake.context.trace_id
    assert react.parent.span_id == intake.context.span_id
    assert dict(intake.attributes) == {"aml.event_id": "e-1", "aml.model": "m"}
    assert not react.links, "nothing else was current: nothing to link"


def test_the_carried_parent_wins_over_the_current_span_which_is_linked(on: Sdk) -> None:
    with telemetry.span("intake"):
        traceparent = telemetry.carry({})[telemetry.TRACEPARENT]
    with telemetry.span("host invocation"), telemetry.span("react", parent=traceparent):
        pass
    spans = by_name(on)
    assert spans["react"].parent.span_id == spans["intake"].context.span_id
    assert [link.context.span_id for link in spans["react"].links] == [spans["host invocation"].context.span_id]


def test_a_failed_span_keeps_the_errors_type_and_never_its_text(on: Sdk) -> None:
    secret = "https://hooks.slack.com/services/T000/B000/very-secret"
    with pytest.raises(ValueError), telemetry.span("notify.slack"):
        raise ValueError(f"could not post to {secret}")
    [span] = on.finished()
    assert span.status.status_code.name == "ERROR" and span.status.description == "ValueError"
    assert span.attributes["aml.error"] == "ValueError"
    assert not span.events, "no exception event: its message could quote a webhook URL"
    assert secret not in repr((span.status, span.attributes, span.events))


def test_every_platform_call_is_a_client_span_named_for_the_method_with_its_arguments(on: Sdk) -> None:
    platform = telemetry.traced_platform(FakePlatform())  # type: ignore[arg-type]
    model = ModelVersion(location="registry:shared", name="churn", version="7", uri="azureml:churn:7")

    platform.create_deployment("prod", "churn", "churn-v7", model, DeploymentSpec())
    platform.get_model("dev", "churn", "7")

    spans = by_name(on)
    deploy = spans["platform.create_deployment"]
    assert deploy.kind.name == "CLIENT"
    assert dict(deploy.attributes) == {"aml.workspace": "prod", "aml.endpoint": "churn", "aml.deployment": "churn-v7",
                                       "aml.model": "churn", "aml.version": "7"}
    assert dict(spans["platform.get_model"].attributes) == {"aml.workspace": "dev", "aml.model": "churn",
                                                            "aml.version": "7"}


def test_scoring_ranges_carry_the_submissions_trace_to_each_range(on: Sdk) -> None:
    from shared.scoring import jobs

    sent: list[dict[str, Any]] = []
    ports = SimpleNamespace(queue=SimpleNamespace(send=sent.append),
                            state=SimpleNamespace(update=lambda kind, key, change, attempts: change({})))
    with telemetry.span("score.submit"):
        jobs._enqueue("score-1", 2, ports)  # type: ignore[arg-type]
    for item in sent:
        with telemetry.scoring_range(item):
            pass

    submit = by_name(on)["score.submit"]
    ranges = [span for span in on.finished() if span.name == "score.range"]
    assert [(span.attributes["aml.job"], span.attributes["aml.range"]) for span in ranges] == [("score-1", 0),
                                                                                               ("score-1", 1)]
    assert all(span.parent.span_id == submit.context.span_id for span in ranges)


# Decisions and metrics -------------------------------------------------------------------------------------


def test_an_audit_entry_is_a_decision_record_a_span_attribute_and_a_count(on: Sdk,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    entry = AuditEntry(correlation_id="e-2", subject="models/churn:4", action="lifecycle", outcome="passed",
                       reason="every gate passed", details={"rule": "churn"})
    with caplog.at_level(logging.INFO, telemetry.DECISION_LOGGER), telemetry.span("react"):
        telemetry.audited(entry)

    [record] = [r for r in caplog.records if r.name == telemetry.DECISION_LOGGER]
    dims = {name: getattr(record, name) for name in ("aml.event_id", "aml.decision", "aml.model", "aml.version",
                                                     "aml.rule", "aml.reason")}
    assert dims == {"aml.event_id": "e-2", "aml.decision": "lifecycle:passed", "aml.model": "churn",
                    "aml.version": "4", "aml.rule": "churn", "aml.reason": "every gate passed"}
    assert by_name(on)["react"].attributes["aml.decision"] == "lifecycle:passed"
    assert (1, {"aml.decision_kind": "lifecycle", "aml.outcome": "passed"}) in on.points("aml_reactor.decisions")


def test_a_rollouts_new_history_moves_the_rollout_metrics(on: Sdk, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"ep-{id(caplog)}"  # the in-memory reader accumulates over the test session
    stepped, analysed, undone = (RolloutEntry(time=NOW, actor="timer", **fields) for fields in (
        {"action": HistoryAction.STEP, "reason": "50%", "traffic": {"old": 50, "new-v2": 50}},
        {"action": HistoryAction.ANALYSIS_FAIL, "reason": "errors", "traffic": {"old": 50, "new-v2": 50}},
        {"action": HistoryAction.ROLLED_BACK, "reason": "errors", "traffic": {"old": 100}},
    ))
    record = rollout("2").model_copy(update={"endpoint": endpoint, "deployment": "new-v2"})

    with caplog.at_level(logging.INFO, telemetry.DECISION_LOGGER):
        telemetry.rollout_progress(record, [stepped])
        telemetry.rollout_progress(record, [])  # a tick that decided nothing
        telemetry.rollout_progress(record, [analysed, undone])

    decisions = [r for r in caplog.records if r.name == telemetry.DECISION_LOGGER]
    assert [getattr(r, "aml.decision") for r in decisions] == ["rollout:step", "rollout:analysis:fail",
                                                               "rollout:rolled_back"]
    assert all(getattr(r, "aml.endpoint") == endpoint and getattr(r, "aml.rule") == "churn" for r in decisions)
    where = {"aml.endpoint": endpoint}
    assert [v for v, dims in on.points("aml_reactor.rollout.steps") if dims == {**where, "aml.action": "step"}] == [1]
    assert [v for v, dims in on.points("aml_reactor.analyses") if dims == {**where, "aml.result": "fail"}] == [1]
    assert [v for v, dims in on.points("aml_reactor.rollbacks") if dims == {**where, "aml.model": "churn"}] == [1]
    assert [v for v, dims in on.points("aml_reactor.rollout.weight") if dims["aml.endpoint"] == endpoint] == [0], \
        "the last weight: traffic restored to the old deployment"


def test_a_scored_range_records_its_rows_per_second(on: Sdk) -> None:
    with telemetry.span("score.range"):
        telemetry.scored({
            "rows": 5000, "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:00:02+00:00",
        })
    assert by_name(on)["score.range"].attributes["aml.scoring.rows_per_second"] == 2500.0


@pytest.mark.parametrize(("subject", "expected"), [
    ("models/churn:4", {"aml.model": "churn", "aml.version": "4"}),
    ("churn:4", {"aml.model": "churn", "aml.version": "4"}),
    ("experiments/x/runs/y", {}),
])
def test_decision_dimensions_read_model_and_version_from_the_subject(subject: str, expected: dict) -> None:
    dims = telemetry.decision_dimensions("e", subject, "test", "submitted", {"endpoint": "churn", "rule": ["no"]})
    assert dims == {"aml.event_id": "e", "aml.decision": "test:submitted", "aml.endpoint": "churn", **expected}


def test_event_dimensions_read_either_schema_and_ignore_anything_else() -> None:
    grid = {"id": "1", "eventType": "T", "subject": "models/m:2"}
    cloud = {"id": "1", "type": "T", "subject": "endpoints/e"}
    assert telemetry.event_dimensions(grid) == {"event_id": "1", "event_type": "T", "model": "m", "version": "2"}
    assert telemetry.event_dimensions(cloud) == {"event_id": "1", "event_type": "T"}
    assert telemetry.event_dimensions(["not", "an", "event"]) == {}
    deep: object = "x"
    for _ in range(100_000):
        deep = [deep]
    hostile = {"id": deep, "eventType": {"a": 1}, "subject": "models/" + "m" * 10_000 + ":1"}
    assert telemetry.event_dimensions(hostile) == {}, "only text is read, and cut before matching"


# Configuration ---------------------------------------------------------------------------------------------


def test_the_distro_is_configured_with_every_trace_kept_no_url_spans_and_no_metadata_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azure.monitor.opentelemetry as distro
    from opentelemetry import trace

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    for name in ("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                 "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(telemetry.CONNECTION_SETTING, "InstrumentationKey=00000000-0000-0000-0000-000000000000")
    monkeypatch.setattr(telemetry, "_state", telemetry._UNSET)

    assert telemetry.enabled() and telemetry.enabled()

    [options] = calls
    assert options["enable_live_metrics"] is False
    disabled = {name for name, value in options["instrumentation_options"].items() if not value["enabled"]}
    assert {"requests", "urllib", "urllib3"} <= disabled, "their spans would carry webhook URLs"
    import os

    assert "azure_vm" not in os.environ["OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"]
    assert (os.environ["OTEL_TRACES_SAMPLER"], os.environ["OTEL_TRACES_SAMPLER_ARG"]) == (telemetry.SAMPLER, "1.0")


def test_an_operators_sampler_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.monitor.opentelemetry as distro
    from opentelemetry import trace

    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kwargs: None)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "microsoft.rate_limited")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "2")
    monkeypatch.setenv(telemetry.CONNECTION_SETTING, "InstrumentationKey=00000000-0000-0000-0000-000000000000")
    monkeypatch.setattr(telemetry, "_state", telemetry._UNSET)
    for name in ("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)

    assert telemetry.enabled()
    import os

    assert (os.environ["OTEL_TRACES_SAMPLER"], os.environ["OTEL_TRACES_SAMPLER_ARG"]) == ("microsoft.rate_limited", "2")


def test_the_workbook_queries_only_metrics_and_dimensions_the_app_sends() -> None:
    workbook = json.loads((ROOT / "infra/workbook.json").read_text())
    queries = "\n".join(item["content"].get("query", "") for item in workbook["items"] if item["type"] == 3)
    queries += "\n".join(p.get("query", "") for item in workbook["items"] if item["type"] == 9
                         for p in item["content"]["parameters"])
    source = (ROOT / "shared/adapters/telemetry.py").read_text()
    metrics = set(re.findall(r'"(aml_reactor\.[a-z_.]+)"', queries))
    assert metrics and metrics <= set(re.findall(r'create_\w+\(\s*"(aml_reactor\.[a-z_.]+)"', source))
    dimensions = set(re.findall(r'customDimensions\["(aml\.[a-z_]+)"\]', queries))
    sent = set(re.findall(r'"(aml\.[a-z_]+)"', source)) | {f"aml.{name}" for name in ("event_id", "event_type")}
    assert dimensions and dimensions <= sent, dimensions - sent
    assert telemetry.DECISION_LOGGER in queries


def test_a_setting_the_distro_refuses_leaves_telemetry_off_instead_of_failing_the_app(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import azure.monitor.opentelemetry as distro
    from opentelemetry import trace

    calls: list[str] = []

    def refuse(**kwargs: Any) -> None:
        calls.append("configure")
        raise ValueError("Invalid instrumentation key InstrumentationKey=not-a-key")

    monkeypatch.setattr(distro, "configure_azure_monitor", refuse)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    for name in ("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                 "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(telemetry.CONNECTION_SETTING, "InstrumentationKey=not-a-key")
    monkeypatch.setattr(telemetry, "_state", telemetry._UNSET)

    with caplog.at_level(logging.ERROR, "shared.adapters.telemetry"):
        assert not telemetry.enabled()
        with telemetry.span("intake") as span:
            assert span is telemetry.NO_SPAN
    assert calls == ["configure"], "tried once, not at every call"
    [record] = caplog.records
    assert "ValueError" in record.getMessage() and "not-a-key" not in record.getMessage()
