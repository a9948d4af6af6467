"""What the control room and opsctl say about a rollout is true of its record (issue 26). Every state and
phase, made by the rollout machine on a fake clock (`rollout_scenarios.py`), is rendered by the control
room's own app.js (in Node, `controlroom_render.js`) and by opsctl's views, and the words are checked
against the record:

- cadence: a step's bake is called a bake, never the analysis's period ("analysed every 2 s" it once said;
  the rollout tick runs on its own schedule);
- skipped steps: a chip is shaded done only when its traffic was set; a first deployment's and a full
  promotion's skipped chips say so;
- last action: how a rollout ended, not the later deletion of the deployments it replaced (`last: retired`
  for a live v1; "previous deployments deleted: none" as its reason);
- counts and plurals: "Full history (1 entry)"; "No analysis yet" only where one is still to come.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from opsctl import views
from tests.unit.rollout_scenarios import scenarios

HERE = Path(__file__).parent
RECORDS = scenarios()


def reached(record: dict[str, Any]) -> set[str]:
    """The chips whose traffic the rollout really set, read from its history."""
    history = record["history"]
    mirrored = any(e["action"] == "mirror" for e in history)
    found = {f"mirror {record['plan']['mirror']['percent']}%"} if mirrored else set()
    return found | {f"{share}%" for share in record["plan"]["steps"]
                    if any((e.get("traffic") or {}).get(record["deployment"]) == share
                           and e["action"] != "rolled_back" for e in history)}


def in_node(cases: object) -> Any:
    """What `controlroom_render.js` prints for `cases`: app.js run unchanged in Node."""
    node = shutil.which("node")
    assert node, "Node.js is needed (the project installs Azurite with it)"
    result = subprocess.run([node, str(HERE / "controlroom_render.js")], input=json.dumps(cases),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    cases = [{"record": record, "past": {"items": [record]} if record["state"] != "progressing" else None}
             for record in RECORDS.values()]
    return dict(zip(RECORDS, in_node(cases), strict=True))


def test_the_scenarios_cover_every_state_and_phase() -> None:
    from shared.domain.records import Phase, RolloutState

    assert {r["state"] for r in RECORDS.values()} == {str(s) for s in RolloutState}
    assert {r["phase"] for r in RECORDS.values()} == {str(p) for p in Phase}
    assert any(r["retired"] for r in RECORDS.values()) and any(r["skip_analysis"] for r in RECORDS.values())


@pytest.mark.parametrize("name", RECORDS)
def test_the_control_room_names_the_bake_as_a_bake_not_a_cadence(name: str, rendered: dict[str, Any]) -> None:
    record, why = RECORDS[name], rendered[name]["why"]
    assert not re.search(r"every \d+ ?s", why), "the bake is no cadence"
    if bake := re.search(r"bake (\d+) s", why):
        plan = record["plan"]
        expected = plan["mirror"]["bake_seconds"] if record["phase"] == "mirror" else plan["bake_seconds"]
        assert int(bake[1]) == expected


@pytest.mark.parametrize("name", RECORDS)
def test_a_chip_is_done_only_when_its_traffic_was_set(name: str, rendered: dict[str, Any]) -> None:
    record = RECORDS[name]
    chips = {chip["label"].split(" (")[0]: chip for chip in rendered[name]["plan"]}
    done = {label for label, chip in chips.items() if "done" in chip["class"].split()}
    assert done <= reached(record)
    if record["state"] == "succeeded":
        assert done == reached(record)
        assert {label for label, chip in chips.items() if "(skipped)" in chip["label"]} == set(chips) - reached(record)
    for chip in chips.values():
        assert ("(skipped)" in chip["label"]) == ("skipped" in chip["class"].split())


@pytest.mark.parametrize("name", RECORDS)
def test_how_a_rollout_stands_is_its_own_last_action_not_the_retirement_after_it(name: str,
                                                                                 rendered: dict[str, Any]) -> None:
    record = RECORDS[name]
    said = rendered[name]["why"]
    assert "none" not in said and "['" not in said
    ended = [e for e in record["history"] if e["action"] != "retired"][-1]
    if record["state"] == "succeeded":
        assert said.startswith(f"Live: {ended['reason']}")
    listed = views.rollouts([record], width=200)
    assert "retired" not in listed.splitlines()[-1]
    assert ended["action"] in listed.splitlines()[-1]
    if record["state"] != "progressing":
        history = views.rollout_history([record], width=400).splitlines()[-1]
        assert (record["rollback_reason"] or ended["reason"]) in history and "deleted: none" not in history


@pytest.mark.parametrize("name", RECORDS)
def test_counts_and_plurals_match_the_record(name: str, rendered: dict[str, Any]) -> None:
    record, card = RECORDS[name], rendered[name]
    count = len(record["history"])
    assert f"Full history ({count} {'entry' if count == 1 else 'entries'})" in card["summaries"]
    analyses = [e for e in record["history"] if e["action"].startswith("analysis:")]
    assert f"Analyses ({len(analyses)})" in card["analyses"]
    if record["skip_analysis"] and not analyses:
        assert "No analysis yet" not in card["text"] and "No analysis:" in card["analyses"]
        assert views.analysis_text(record).startswith("none: ")
    detail = views.rollout(record, {}, width=200)
    assert "analysis" in detail and (not analyses or analyses[-1]["reason"] in detail)


def test_a_first_deployment_says_why_it_skips_its_canary(rendered: dict[str, Any]) -> None:
    why = rendered["first: at 100% without analysis"]["why"]
    assert "first deployment on an empty endpoint has nothing to compare with" in why
    assert rendered["first: live, retired"]["why"] == (
        "Live: first deployment on an empty endpoint: live without analysis (timer); no previous deployment to delete")
    assert rendered["canary: live, retired"]["why"].endswith("previous deployments deleted: credit-risk-v1")


def test_a_review_answer_says_the_stage_it_reached_or_that_the_decision_is_recorded() -> None:
    """bob approved churn v1 while the resync held it; the notice said "churn v1 is awaiting review"."""
    promoted, approval, rejection, rejected = in_node({"reviewOutcomes": [
        ["churn v1", "approve", {"stage": "promoted"}], ["churn v1", "approve", {"stage": "awaiting_review"}],
        ["churn v2", "reject", {"stage": "awaiting_review"}], ["churn v2", "reject", {"stage": "rejected"}]]})
    assert (promoted, rejected) == ("churn v1 is promoted", "churn v2 is rejected")
    assert approval.startswith("churn v1: your approval is recorded;") and "awaiting" not in approval
    assert rejection.startswith("churn v2: your rejection is recorded;")
