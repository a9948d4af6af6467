"""The policy file: validated at load, errors name the rule and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.policy import PolicyError, load_policy, parse_policy
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = "rules: [{name: churn, models: {name: 'churn*'}, test: {pipeline: evaluate-model}}]"


def test_the_shipped_policy_is_valid() -> None:
    policy = load_policy(str(ROOT / "policy/policy.yaml"))
    rule = policy.rule_for_model("credit-risk", {})
    assert rule is not None and rule.rollout is not None and rule.rollout.steps[-1] == 100


def test_rules_match_by_name_pattern_and_tags() -> None:
    policy = parse_policy(
        "rules: [{name: a, models: {name: 'fraud-*', tags: {team: risk}}, test: {pipeline: p}}]"
    )
    assert policy.rule_for_model("fraud-cards", {"team": "risk"}) is not None
    assert policy.rule_for_model("fraud-cards", {"team": "ops"}) is None
    assert policy.rule_for_model("churn", {"team": "risk"}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace("pipeline", "pipelin"), "rules[0] (churn).test.pipeline: Field required"),
        (MINIMAL.replace("}}]", "}, gates: [{metric: auc}]}]"), "rules[0] (churn).gates[0]: Value error, a gate takes"),
        (
            MINIMAL.replace("}}]", "}, rollout: {workspace: prod, endpoint: e, steps: [10, 5]}}]"),
            "rules[0] (churn).rollout.steps",
        ),
        (
            MINIMAL.replace("}}]", "}, rollout: {workspace: prod, endpoint: e, mirror: {percent: 80}}}]"),
            "rules[0] (churn).rollout.mirror.percent",
        ),
        (
            MINIMAL.replace("}}]", "}, rollout: {workspace: prod, endpoint: e, deployment: {instance_count: 0}}}]"),
            "rules[0] (churn).rollout.deployment.instance_count",
        ),
        (MINIMAL.replace("}}]", "}, notify: {default: [pager]}}]"), "rules[0] (churn).notify.default[0]"),
        # Azure ML shares models from a workspace to a registry only; prod deploys the registry's copy.
        (
            MINIMAL.replace("}}]", "}, promotion: {path: ['registry:shared', prod]}}]"),
            "rules[0] (churn).promotion.path: Value error, 'prod' is a workspace",
        ),
        ("rules: [", "not valid YAML"),
    ],
)
def test_errors_name_the_rule_and_the_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")
    assert message in str(caught.value)


def test_a_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(str(tmp_path / "nope.yaml"))


def _drift(fields: str) -> str:
    return MINIMAL.replace("}}]", "}, drift: {pipeline: retrain, " + fields + "}}]")


def test_the_shipped_policy_watches_both_v1_dataset_monitors_and_v2_model_monitors() -> None:
    policy = load_policy(str(ROOT / "policy/policy.yaml"))
    assert policy.rule_for_monitor("credit-risk-weekly") is not None
    found = policy.rule_for_signals(["credit-risk-monitor_data_drift", "credit-risk-monitor_data_quality"])
    assert found is not None and found[1] == ["credit-risk-monitor_data_drift"]


def test_a_v2_rule_matches_its_monitors_signals_named_monitor_underscore_signal() -> None:
    """Signals are named `<monitor>_<signal>` (MicrosoftDocs/azure-ai-docs, how-to-monitor-model-performance.md)."""
    every = parse_policy(_drift("model_monitor: 'churn-*'"))
    some = parse_policy(_drift("model_monitor: churn-mon, signals: [data_drift, prediction_drift]"))
    breached = ["churn-mon_data_quality", "churn-mon_prediction_drift", "fraud-mon_data_drift"]
    watched = ["churn-mon_data_quality", "churn-mon_prediction_drift"]
    assert every.rule_for_signals(breached) == (every.rules[0], watched)
    assert some.rule_for_signals(breached) == (some.rules[0], ["churn-mon_prediction_drift"])
    assert some.rule_for_signals(["churn-mon_data_quality", "churn-monitor_data_drift"]) is None
    assert some.rule_for_monitor("churn-mon") is None  # a v2-only rule watches no v1 dataset monitor


def test_a_v1_only_rule_watches_no_model_monitor_signal() -> None:
    policy = parse_policy(_drift("monitor: 'churn-*', threshold: 0.3"))
    assert policy.rule_for_monitor("churn-ds") is not None
    assert policy.rule_for_signals(["churn-ds_data_drift"]) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("inputs: {}", "rules[0] (churn).drift: Value error, drift needs monitor (a v1 dataset monitor) or"),
        ("monitor: 'churn-*'", "rules[0] (churn).drift: Value error, threshold is required with monitor"),
        ("model_monitor: m, threshold: 0.3", "rules[0] (churn).drift: Value error, threshold applies to monitor"),
        ("monitor: m, threshold: 0.3, signals: [x]", "(churn).drift: Value error, signals are signals of a model_"),
        ("model_monitor: m, signals: []", "rules[0] (churn).drift.signals: List should have at least 1 item"),
        ("model_monitor: m, signal: [x]", "rules[0] (churn).drift.signal: Extra inputs are not permitted"),
    ],
)
def test_drift_errors_name_the_rule_and_the_field(fields: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(_drift(fields), "policy.yaml")
    assert message in str(caught.value)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n" for previous, name in zip("abcdef", "bcdefg", strict=True)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace("}}]", "}, gates: [{metric: auc, min: " + "9" * 5000 + "}]}]"),
         "line 1, column 110: a number of 5000 characters; at most 100"),
        ("rules:\n  - name: " + "9" * 4000, "line 2, column 11: a number of 4000 characters"),
        ("rules: " + "[" * 1000 + "]" * 1000, "line 1, column 39: nested deeper than 32 levels"),
        ("rules:\n" + "".join("  " * depth + "- \n" for depth in range(1000)), "nested deeper than 32 levels"),
        ("rules: &a [*a]", "line 1, column 12: alias *a refers to a node that contains it"),
        (BOMB, "more than 100000 values (aliases counted where they are used)"),
        ("rules: 2026-13-45", "a value cannot be read: month must be in 1..12"),
    ],
)
def test_a_policy_that_cannot_be_loaded_safely_is_refused_naming_the_place(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert message in str(caught.value)


def test_aliases_and_long_texts_within_the_bounds_are_loaded() -> None:
    text = ("rules: [{name: a, models: {name: '" + "c" * 500 + "'}, test: {pipeline: p}, "
            "gates: &gates [{metric: auc, min: 0.8}]}, "
            "{name: b, models: {name: b}, test: {pipeline: p}, gates: *gates}]")
    assert [rule.gates[0].min for rule in parse_policy(text).rules] == [0.8, 0.8]


def test_the_default_relative_policy_path_is_read_from_the_repository_s_root() -> None:
    """`MLOPS_POLICY_PATH` defaults to `policy/policy.yaml`: found from the repository's root wherever the
    policy module lives (it moved to shared/domain/, and the default path then named shared/policy/)."""
    default = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).policy_path
    assert load_policy(default) == load_policy(str(ROOT / "policy/policy.yaml"))
