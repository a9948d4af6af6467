"""How the control room's Rollouts view reads the API at each refresh (app.js's loadRollouts, run in Node against a
scripted API by `controlroom_loading.js`): the endpoints the last list named as active (or due for their re-read)
are read together with the list, not after its answer; a quiet one is not read at all; one that moved between its
read and the list is read again, and its card shows what the list shows."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
LIST, PAST = "ops/rollouts", "/history?limit=20"
T = 1_800_000_000_000  # the page's clock, ms


def rollout(endpoint: str, state: str, reason: str, finished: str | None = None) -> dict[str, Any]:
    """A rollout as `GET ops/rollouts/{ws}/{ep}` gives it (the fields the page reads to decide)."""
    history = [{"time": "2027-01-15T08:00:00+00:00", "action": "start", "actor": "system", "reason": "started"},
               {"time": f"2027-01-15T08:{len(reason):02d}:00+00:00", "action": "step", "actor": "system",
                "reason": reason}]
    return {"key": f"prod.{endpoint}", "id": f"{endpoint}/m-v2", "workspace": "prod", "endpoint": endpoint,
            "state": state, "phase": "step", "step": 1, "finished": finished, "history": history}


def listed(*records: dict[str, Any]) -> dict[str, Any]:
    """The list's answer: each rollout with its last history entry."""
    return {"items": [{**record, "history": record["history"][-1:]} for record in records]}


def answers(*records: dict[str, Any], reads: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The API's answers: the list of `records`, each endpoint's record (or the `reads` given, in turn) and no past
    rollouts."""
    found: dict[str, Any] = {LIST: [listed(*records)]}
    for record in records:
        path = f"ops/rollouts/prod/{record['endpoint']}"
        found[path] = (reads or {}).get(record["endpoint"], [record])
        found[path + PAST] = [{"items": []}]
    return found


def loaded(*refreshes: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return list(run({"refreshes": [{"now": now, "answers": found} for now, found in refreshes]}))


def run(cases: dict[str, Any]) -> Any:
    node = shutil.which("node")
    assert node, "Node.js is needed (the project installs Azurite with it)"
    result = subprocess.run([node, str(HERE / "controlroom_loading.js")], input=json.dumps(cases),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


ACTIVE = rollout("live", "progressing", "baking step 10%")
QUIET = rollout("quiet", "succeeded", "100% after every analysis passed", finished="2027-01-01T00:00:00+00:00")


def test_the_active_endpoint_is_read_with_the_list_and_a_quiet_one_only_when_due() -> None:
    first, second, due = loaded((T, answers(ACTIVE, QUIET)), (T + 2000, answers(ACTIVE, QUIET)),
                                (T + 31_000, answers(ACTIVE, QUIET)))

    assert {f"> ops/rollouts/prod/{name}" for name in ("live", "quiet")} <= set(first["events"])
    assert second["events"].index("> ops/rollouts/prod/live") < second["events"].index("< ops/rollouts"), (
        "the active endpoint's read starts before the list has answered", second["events"])
    assert not [event for event in second["events"] if "quiet" in event], "a quiet endpoint is not read again"
    assert [event for event in second["events"] if event.startswith(">")] == [
        "> ops/rollouts", "> ops/rollouts/prod/live"], "the past rollouts are not read again"
    assert due["events"].index("> ops/rollouts/prod/quiet") < due["events"].index("< ops/rollouts"), (
        "a quiet endpoint due for its re-read is read with the list too")
    assert [card["last"] for card in second["cards"]] == ["baking step 10%", "100% after every analysis passed"]


def test_an_endpoint_that_moved_since_it_was_read_is_read_again_and_shows_what_the_list_shows() -> None:
    stepped = rollout("live", "progressing", "next step: 50%")
    undone = rollout("quiet", "rolled_back", "undone by ops", finished="2027-01-15T09:00:00+00:00")

    _, moved = loaded((T, answers(ACTIVE, QUIET)),
                      (T + 2000, answers(stepped, undone, reads={"live": [ACTIVE, stepped]})))

    requests = [event for event in moved["events"] if event.startswith(">")]
    assert requests.count("> ops/rollouts/prod/live") == 2, "read with the list (before it moved), then again"
    assert requests.count("> ops/rollouts/prod/quiet") == 1, "the list says it moved: read once, after the list"
    assert moved["events"].index("> ops/rollouts/prod/quiet") > moved["events"].index("< ops/rollouts")
    assert "> ops/rollouts/prod/quiet" + PAST in requests, "a rollout that ended has its past read again"
    assert [card["last"] for card in moved["cards"]] == ["next step: 50%", "undone by ops"]


def test_a_card_is_drawn_again_only_when_what_it_shows_changed_whether_one_record_or_several() -> None:
    record = {"model": "churn", "version": "2", "stage": "live"}
    draws = run({"drawn": [
        ["churn:2", record, False], ["churn:2", None, True],  # the very record again
        ["churn:2", dict(record), False],  # the same, read again
        ["churn:2", {**record, "stage": "retired"}, False],
        ["prod.a", [ACTIVE, {"items": []}], False], ["prod.a", [ACTIVE, {"items": []}], False],
        ["prod.a", [ACTIVE, "503: unavailable"], False],
    ]})

    assert draws == [1, 1, 1, 2, 3, 3, 4]
