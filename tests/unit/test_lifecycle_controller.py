"""The lifecycle controller and the rollout engine together, on fakes of the ports: whole chains in
milliseconds. The engine never writes a lifecycle; each version takes its rollout's outcome itself."""

from __future__ import annotations

import pytest

from shared.bootstrap import Services
from shared.domain import lifecycle as machine
from shared.domain.ports import ModelVersion
from shared.domain.records import RolloutAction, RolloutState
from shared.reactor import lifecycle, reactions
from shared.reactor import rollout as engine
from tests.unit.test_isolation_fakes import POLICY, clock_of, fake_services

KEY = engine.key_for("prod", "churn")
WITH_GRACE = POLICY.replace("retire_previous_after_seconds: 0", "retire_previous_after_seconds: 3600")


def register(services: Services, version: str) -> None:
    rule = services.policy.rule_named("churn")
    assert rule is not None
    model = ModelVersion(location="dev", name="churn", version=version, uri=f"azureml:churn:{version}")
    lifecycle.start_testing(services, rule, model, cause=f"event-{version}")
    lifecycle.reconcile(services, machine.key_of("churn", version), cause=f"event-{version}")


def stage(services: Services, version: str) -> str:
    record = services.state.lifecycles.get(f"churn:{version}")
    assert record is not None
    return record.stage.value


def tick_until(services: Services, version: str, wanted: str) -> None:
    for _ in range(10):
        reactions.tick_rollouts(services)
        if stage(services, version) == wanted:
            return
    raise AssertionError(f"v{version} is {stage(services, version)}, not {wanted}")


def test_a_registered_version_is_tested_promoted_rolled_out_and_live_as_the_rule_s_champion() -> None:
    services = fake_services()
    register(services, "1")
    assert stage(services, "1") == "rolling_out"

    tick_until(services, "1", "live")

    champion = services.state.champions.get("churn")
    assert champion is not None and champion.version == "1" and champion.metrics == {"accuracy": 0.9}
    assert services.platform.tags[("churn", "1")][machine.TAG] == "live"  # type: ignore[attr-defined]
    record = services.state.lifecycles.get("churn:1")
    assert record is not None
    assert [entry.stage.value for entry in record.history] == ["testing", "passed", "promoted", "rolling_out", "live"]


def test_a_replaced_version_is_superseded_then_retired_once_its_deployment_is_deleted() -> None:
    services = fake_services()
    register(services, "1")
    tick_until(services, "1", "live")
    register(services, "2")
    tick_until(services, "2", "live")

    assert stage(services, "1") == "superseded"
    assert services.platform.tags[("churn", "1")][machine.TAG] == "superseded"  # type: ignore[attr-defined]
    reactions.resync(services)  # the grace period is 0: the tick retired churn-v1; the resync sees it gone
    assert stage(services, "1") == "retired"
    copies = services.platform.copies  # type: ignore[attr-defined]
    assert (copies[("registry:shared", "churn", "1")][machine.TAG],
            copies[("registry:shared", "churn", "2")][machine.TAG]) == ("retired", "live"), \
        "the registry copies that served tell their stage too"
    assert services.platform.serving() == {"churn-v2": 100}  # type: ignore[attr-defined]


def test_an_undo_rolls_the_new_version_back_and_makes_the_replaced_one_live_again() -> None:
    services = fake_services(WITH_GRACE)
    register(services, "1")
    tick_until(services, "1", "live")
    register(services, "2")
    tick_until(services, "2", "live")
    assert stage(services, "1") == "superseded"

    undone = engine.act(services, KEY, RolloutAction.UNDO, "ada", "complaints")
    lifecycle.follow(services, undone, "request-1")

    assert undone.state is RolloutState.ROLLED_BACK
    assert (stage(services, "2"), stage(services, "1")) == ("rolled_back", "live")
    assert services.state.champions.get("churn").version == "1"  # type: ignore[union-attr]
    assert services.platform.serving() == {"churn-v1": 100}  # type: ignore[attr-defined]


def test_every_finished_rollout_is_kept_newest_first() -> None:
    services = fake_services()
    register(services, "1")
    tick_until(services, "1", "live")
    clock_of(services).advance(hours=1)
    register(services, "2")
    tick_until(services, "2", "live")

    history = [listed.load() for listed in engine.history(services, KEY).items]
    assert [record.version for record in history] == ["2", "1"]
    assert all(record.state is RolloutState.SUCCEEDED for record in history)


def test_restarting_an_ended_rollout_must_be_asked_for_and_then_uses_the_new_plan() -> None:
    services = fake_services()
    register(services, "1")
    tick_until(services, "1", "live")
    rule = services.policy.rule_named("churn")
    assert rule is not None and rule.rollout is not None
    faster = rule.rollout.model_copy(update={"steps": [100]})

    with pytest.raises(engine.RolloutEnded, match="has ended succeeded"):
        engine.start(services, "churn", faster, "registry:shared", "churn", "1", "request-1")
    again = engine.start(services, "churn", faster, "registry:shared", "churn", "1", "request-2", restart=True)

    assert again.state is RolloutState.PROGRESSING and again.plan.steps == [100]
    assert [listed.load().state for listed in engine.history(services, KEY).items] == [RolloutState.SUCCEEDED]


def test_an_abort_rolls_back_at_once_and_the_version_takes_the_outcome() -> None:
    services = fake_services(WITH_GRACE)
    register(services, "1")
    tick_until(services, "1", "live")
    register(services, "2")
    reactions.tick_rollouts(services)  # provisioned: 50 %

    aborted = engine.act(services, KEY, RolloutAction.ABORT, "ada", "wrong model")
    lifecycle.follow(services, aborted, "request-1")

    assert aborted.state is RolloutState.ROLLED_BACK and aborted.rollback_reason == "wrong model"
    assert stage(services, "2") == "rolled_back" and stage(services, "1") == "live"
    assert services.platform.serving() == {"churn-v1": 100}  # type: ignore[attr-defined]


def test_the_engine_does_not_import_the_lifecycle() -> None:
    import ast
    import inspect

    for module in (engine, engine.machine):
        tree = ast.parse(inspect.getsource(module))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not any(name and "lifecycle" in name for name in imported), module.__name__


def test_a_version_judged_by_another_worker_right_after_its_record_is_created_keeps_its_verdict_tag(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The test job can end, and another worker judge the version, between the record's creation and its
    `testing` tag (seen under load in the e2e suite): the later `testing` tag must not overwrite the verdict."""
    services = fake_services()
    rule = services.policy.rule_named("churn")
    assert rule is not None
    model = ModelVersion(location="dev", name="churn", version="1", uri="azureml:churn:1")
    create = services.state.lifecycles.create

    def create_then_judged_elsewhere(key: str, record: object) -> bool:
        created = create(key, record)  # type: ignore[arg-type]
        lifecycle.reconcile(services, key, cause="RunCompleted")
        return created

    monkeypatch.setattr(services.state.lifecycles, "create", create_then_judged_elsewhere)
    lifecycle.start_testing(services, rule, model, cause="ModelRegistered")
    judged = stage(services, "1")
    assert judged != "testing", "the other worker took it on (its fake test job ends at once)"
    assert services.platform.tags[("churn", "1")][machine.TAG] != "testing"  # type: ignore[attr-defined]


def test_an_older_version_still_testing_is_superseded_and_its_test_job_canceled() -> None:
    """A newer version registered while v1's test job runs passes its test: v1's job is canceled, v1 is
    superseded by v2, and v2 goes on as usual."""
    services = fake_services()
    platform = services.platform
    platform.running.add("test-churn-v1")  # type: ignore[attr-defined]
    register(services, "1")
    assert stage(services, "1") == "testing"

    register(services, "2")

    assert platform.canceled == ["test-churn-v1"]  # type: ignore[attr-defined]
    record = services.state.lifecycles.get("churn:1")
    assert record is not None and record.stage.value == "superseded" and record.superseded_by == "2"
    assert platform.tags[("churn", "1")][machine.TAG] == "superseded"  # type: ignore[attr-defined]
    assert stage(services, "2") == "rolling_out"


def test_a_version_whose_test_job_has_ended_is_judged_though_a_newer_one_came() -> None:
    """Only a running test job is canceled: a newer version that passes after v1's job completed leaves v1 to
    its verdict, and a version that is not a number is never superseded (it orders nothing)."""
    services = fake_services()
    register(services, "1")
    platform = services.platform
    platform.running.add("test-churn-vx")  # type: ignore[attr-defined]
    rule = services.policy.rule_named("churn")
    assert rule is not None
    lifecycle.start_testing(services, rule, ModelVersion(location="dev", name="churn", version="x",
                                                         uri="azureml:churn:x"), cause="event-x")
    register(services, "2")

    assert platform.canceled == []  # type: ignore[attr-defined]
    assert stage(services, "1") != "superseded"
    assert stage(services, "x") == "testing"


def test_an_older_version_testing_is_superseded_only_once_the_newer_one_has_passed() -> None:
    """Both test jobs run: nothing is canceled (the newer one may fail, and then the older one is the one to
    deploy). Once v2's job completes and v2 passes, v1's running job is canceled and v1 superseded."""
    services = fake_services()
    platform = services.platform
    platform.running.update({"test-churn-v1", "test-churn-v2"})  # type: ignore[attr-defined]
    register(services, "1")
    register(services, "2")
    assert (stage(services, "1"), stage(services, "2")) == ("testing", "testing")
    assert platform.canceled == []  # type: ignore[attr-defined]

    platform.running.discard("test-churn-v2")  # type: ignore[attr-defined]
    lifecycle.reconcile(services, machine.key_of("churn", "2"), cause="RunCompleted")

    assert platform.canceled == ["test-churn-v1"]  # type: ignore[attr-defined]
    assert (stage(services, "1"), stage(services, "2")) == ("superseded", "rolling_out")
