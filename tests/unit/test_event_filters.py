"""The self-check of the run events' Event Grid filter keys (shared/adapters/azureml/eventfilters.py).

No public source settles whether advanced-filter keys compare with their case: infra writes `data.RunStatus`
and `data.RunTags.<tag>` (as the Azure ML model-monitoring docs do), the payload says `runStatus` / `runTags`.
The check warns on exactly that, naming the subscription, so a wrong guess is loud at the first resync.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.azureml import eventfilters
from shared.adapters.azureml.eventfilters import check_workspace, filter_warnings, key_problem
from shared.domain.ports import ConfigurationError

RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
WORKSPACE = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
             "Microsoft.MachineLearningServices/workspaces/mlw-dev")


def _subscription(name: str, *keys: str, types: tuple[str, ...] = (RUN_STATUS_CHANGED,)) -> dict[str, Any]:
    advanced = [{"operatorType": "StringIn", "key": key, "values": ["Failed"]} for key in keys]
    return {"name": name, "properties": {"filter": {"includedEventTypes": list(types), "advancedFilters": advanced}}}


def test_the_keys_infra_writes_are_warned_about_as_unsettled() -> None:
    """infra/modules/aml-events.bicep's two RunStatusChanged subscriptions, as deployed."""
    warnings = filter_warnings([
        _subscription("app-run-status-changed", "data.RunStatus"),
        _subscription("app-model-monitor-breached", "data.RunTags.azureml_modelmonitor_threshold_breached"),
    ])

    assert warnings == [
        "Event Grid subscription app-run-status-changed: key 'data.RunStatus' differs in case from the payload's "
        "'runStatus': if Event Grid compares keys with their case, this subscription delivers nothing",
        "Event Grid subscription app-model-monitor-breached: key 'data.RunTags.azureml_modelmonitor_threshold_breached'"
        " differs in case from the payload's 'runTags': if Event Grid compares keys with their case, this "
        "subscription delivers nothing",
    ]


def test_keys_in_the_payloads_case_and_other_event_types_pass() -> None:
    assert filter_warnings([
        _subscription("run", "data.runStatus", "data.runTags.x", "subject"),
        _subscription("models", "data.ModelName", types=("Microsoft.MachineLearningServices.ModelRegistered",)),
    ]) == []


def test_a_key_naming_no_field_is_a_subscription_that_delivers_nothing() -> None:
    assert key_problem("data.status") == (
        "key 'data.status' names no field of the run events' payload: this subscription delivers nothing")


def test_a_workspace_whose_filters_cannot_be_read_is_a_warning_not_a_failure() -> None:
    def refused(url: str) -> dict[str, Any]:
        raise ConfigurationError("not allowed (403)")

    [warning] = check_workspace(refused, "https://management.azure.com/", "dev", WORKSPACE)

    assert warning == "workspace dev: could not read its Event Grid filters to check them: not allowed (403)"


def test_every_page_of_subscriptions_is_read_from_the_topic_infra_makes() -> None:
    asked: list[str] = []
    pages: dict[str, dict[str, Any]] = {
        "first": {"value": [_subscription("a", "data.runStatus")], "nextLink": "https://arm/next"},
        "https://arm/next": {"value": [_subscription("b", "data.RunStatus")]},
    }

    def read(url: str) -> dict[str, Any]:
        asked.append(url)
        return pages["first" if not asked[:-1] else url]

    warnings = check_workspace(read, "https://management.azure.com/", "dev", WORKSPACE)

    assert asked[0] == ("https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000001/"
                        "resourceGroups/rg/providers/Microsoft.EventGrid/systemTopics/evgst-mlw-dev/"
                        "eventSubscriptions?api-version=2025-02-15")
    assert len(asked) == 2 and len(warnings) == 1 and warnings[0].startswith("workspace dev: Event Grid subscription b")


def test_the_check_runs_once_per_process_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventfilters, "_checked", type(eventfilters._checked)())
    calls: list[int] = []

    class Platform:
        def event_filter_warnings(self) -> list[str]:
            calls.append(1)
            raise RuntimeError("boom")

    first = eventfilters.warn_once(Platform())
    again = eventfilters.warn_once(Platform())

    assert first == ["could not check the Event Grid filters: RuntimeError: boom"] and again == [] and calls == [1]
    assert eventfilters.warn_once(object()) == []
