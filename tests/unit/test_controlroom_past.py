"""The control room's past rollouts of an endpoint come a page at a time (`GET .../history?limit=`): the card
says there are more and offers the "more" control its other lists have (rendered by app.js in Node,
`controlroom_render.js`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.unit.rollout_scenarios import scenarios

HERE = Path(__file__).parent


def rendered(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node.js is needed (the project installs Azurite with it)"
    result = subprocess.run([node, str(HERE / "controlroom_render.js")], input=json.dumps(cases),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_a_page_of_past_rollouts_with_more_after_it_says_so_and_offers_more() -> None:
    record = next(found for found in scenarios().values() if found["state"] == "succeeded")
    older = {**record, "version": "0", "deployment": "older", "started": "2026-01-01T00:00:00+00:00"}

    paged, last = rendered([{"record": record, "past": {"items": [older], "next": "t2"}},
                            {"record": record, "past": {"items": [older]}}])

    assert "Past rollouts (1+)" in paged["summaries"] and paged["text"].endswith("more")
    assert "Past rollouts (1)" in last["summaries"] and not last["text"].endswith("more")

