"""The policy file: validated at load, errors name the rule and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.policy import PolicyError, load_policy, parse_policy

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
        (MINIMAL.replace("}}]", "}, notify: {default: [pager]}}]"), "rules[0] (churn).notify.default[0]"),
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
