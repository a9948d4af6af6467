"""Triggers bind what settings let people rename from those settings (issue 14, item 7).

A binding property that names a queue, a container or a schedule is either a `%SETTING%`
expression, which the Functions host (and the local host, the same way) resolves from app
settings when it starts, or a fixed name that no setting offers: a literal equal to a
setting's default would silently ignore the setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devhost.host import RESOLVED_PROPERTIES, SETTING_REFERENCE, resolve_bindings
from devhost.indexing import IndexedFunction, IndexingError
from shared.bindings import BINDING_SETTINGS, setting_expression
from shared.settings import Settings, binding_defaults
from tests.unit import app_index

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bindings() -> dict[str, list[dict[str, Any]]]:
    """Every function's bindings as the worker indexes function_app.py."""
    return app_index.bindings()


def setting_defaults() -> set[str]:
    """The default of every string setting: the names settings offer to change."""
    defaults = Settings.model_validate({"AzureWebJobsStorage": "x"})
    values = [*defaults.model_dump(by_alias=True).values(), *defaults.scoring.model_dump(by_alias=True).values()]
    return {value for value in values if isinstance(value, str) and value}


def named_properties(bindings: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(function, property, value) for every property the host resolves."""
    return [
        (function, key, str(binding[key]))
        for function, items in bindings.items() for binding in items for key in RESOLVED_PROPERTIES if key in binding
    ]


def test_every_name_a_binding_listens_to_is_a_setting_expression_or_a_name_settings_do_not_offer(
    bindings: dict[str, list[dict[str, Any]]],
) -> None:
    offered = setting_defaults()
    properties = named_properties(bindings)
    assert {key for _, key, _ in properties} == {"queueName", "path", "schedule"}, properties
    for function, key, value in properties:
        literal = SETTING_REFERENCE.sub("", value).split("/")[0]
        referenced = SETTING_REFERENCE.findall(value)
        assert set(referenced) <= set(BINDING_SETTINGS), (function, key, value)
        if not referenced:
            assert literal not in offered, f"{function}.{key} hard-codes {value!r}, which a setting offers to change"


def test_the_scoring_triggers_bind_their_queue_and_container_from_settings(
    bindings: dict[str, list[dict[str, Any]]],
) -> None:
    [score_range] = bindings["score_range"]
    assert score_range["queueName"] == "%MLOPS_SCORING_QUEUE%"
    [score_blob] = bindings["score_blob"]
    assert score_blob["path"] == "%MLOPS_SCORING_INPUT_CONTAINER%/{name}"


def test_the_binding_settings_are_exactly_those_the_bindings_use(bindings: dict[str, list[dict[str, Any]]]) -> None:
    used = {name for _, _, value in named_properties(bindings) for name in SETTING_REFERENCE.findall(value)}
    assert used == set(BINDING_SETTINGS)
    assert set(BINDING_SETTINGS) <= set(Settings.names())


def test_every_binding_setting_has_its_default_in_the_example_settings() -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert {name: example.get(name) for name in BINDING_SETTINGS} == binding_defaults()
    assert binding_defaults()["MLOPS_SCORING_QUEUE"] == "scoring-ranges"


def test_an_expression_names_only_a_binding_setting() -> None:
    assert setting_expression("MLOPS_SCORING_QUEUE") == "%MLOPS_SCORING_QUEUE%"
    with pytest.raises(ValueError, match="MLOPS_STATE_CONTAINER is not one of the settings bindings read"):
        setting_expression("MLOPS_STATE_CONTAINER")


def indexed(trigger: dict[str, Any]) -> IndexedFunction:
    return IndexedFunction(name="score_range", trigger=trigger, bindings=[trigger], code=None, annotations={})


def test_the_local_host_resolves_expressions_from_settings_as_the_functions_host_does() -> None:
    trigger = {"type": "blobTrigger", "name": "client", "path": "%IN%/{name}", "connection": "AzureWebJobsStorage"}
    function = resolve_bindings(indexed(trigger), {"IN": "renamed-input", "AzureWebJobsStorage": "x"})
    assert function.trigger["path"] == "renamed-input/{name}"
    assert function.bindings == [function.trigger]
    assert function.trigger["connection"] == "AzureWebJobsStorage", "a connection names a setting; never resolved"
    assert trigger["path"] == "%IN%/{name}", "the indexed function is left as it was"


@pytest.mark.parametrize("environ", [{}, {"Q": ""}])
def test_a_binding_setting_that_is_missing_or_empty_fails_the_start_naming_it(environ: dict[str, str]) -> None:
    trigger = {"type": "queueTrigger", "name": "msg", "queueName": "%Q%", "connection": "AzureWebJobsStorage"}
    with pytest.raises(IndexingError, match=r"'Functions.score_range': '%Q%' does not resolve to a value"):
        resolve_bindings(indexed(trigger), environ)


def test_the_local_host_refuses_to_start_without_a_binding_setting(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in BINDING_SETTINGS}
    env |= {**binding_defaults(), "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    del env["MLOPS_SCORING_QUEUE"]
    done = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", "0", "--app-dir", str(ROOT), "--keys", str(tmp_path / "k.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode != 0
    assert "'%MLOPS_SCORING_QUEUE%' does not resolve to a value" in done.stderr
