"""Contracts of `list_model_versions`: the real azure-ai-ml over HTTPS to the local Azure ML service.

The adapter lists the workspace's models, then each model's versions as azure-ai-ml asks for label
`latest` (`$orderBy=createdtime desc`, `$top`), following `nextLink` only while versions are newer than
`since`. Azure answers `$top` versions a page with a `nextLink` carrying `$top` and a `$skipToken`
(recorded: azure-sdk-assets, model/e2etests/test_model.pyTestModeltest_models_get_latest_label.json).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from localaml.service import LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.adapters.azureml.listing import PAGE
from shared.domain.ports import ConfigurationError

DEV = LocalAzureML.workspace_id("dev")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def register(fake: LocalAzureML, name: str, version: str, minutes: float, archived: bool = False) -> None:
    """A version of `name` in dev created `minutes` after T0 (systemData.createdAt, as Azure writes it)."""
    resource = fake.add_model(DEV, name, version, {"owner": "ds"})
    resource["systemData"]["createdAt"] = (T0 + timedelta(minutes=minutes)).isoformat(timespec="microseconds")
    resource["properties"]["isArchived"] = archived


def version_lists(fake: LocalAzureML) -> list[tuple[str, dict[str, str]]]:
    return [(r.path.rsplit("/models/", 1)[1], r.query) for r in fake.requests_to("GET", r"/models/[^/]+/versions$")]


def test_versions_come_newest_first_across_models_with_their_creation_time(
    platform: AzureMLPlatform, fake: LocalAzureML,
) -> None:
    register(fake, "churn", "1", 1)
    register(fake, "fraud", "1", 2)
    register(fake, "churn", "2", 3)

    found = platform.list_model_versions("dev", T0, 10)

    assert [(m.name, m.version) for m in found] == [("churn", "2"), ("fraud", "1"), ("churn", "1")]
    assert [m.created_at for m in found] == [T0 + timedelta(minutes=n) for n in (3, 2, 1)]
    assert found[0].location == "dev" and found[0].uri == "azureml:churn:2" and found[0].tags == {"owner": "ds"}
    assert found[0].created_by == "localaml@localaml.test"
    [models] = fake.requests_to("GET", r"/workspaces/dev/models$")
    assert models.query["listViewType"] == "ActiveOnly"
    for _, query in version_lists(fake):
        assert (query["$orderBy"], query["$top"], query["listViewType"]) == ("createdtime desc", "10", "ActiveOnly")


def test_only_versions_since_the_time_and_before_the_bound_are_listed(
    platform: AzureMLPlatform, fake: LocalAzureML,
) -> None:
    for number in range(1, 6):
        register(fake, "churn", str(number), number)

    since = platform.list_model_versions("dev", T0 + timedelta(minutes=3), 10)
    window = platform.list_model_versions("dev", T0 + timedelta(minutes=2), 10, before=T0 + timedelta(minutes=4))

    assert [m.version for m in since] == ["5", "4", "3"], "created at or after `since`"
    assert [m.version for m in window] == ["4", "3", "2"], "and at or before `before`"


def test_a_listing_is_bounded_newest_first(platform: AzureMLPlatform, fake: LocalAzureML) -> None:
    for number in range(1, 6):
        register(fake, "churn", str(number), number)
        register(fake, "fraud", str(number), number + 0.5)

    found = platform.list_model_versions("dev", T0, 3)

    assert [(m.name, m.version) for m in found] == [("fraud", "5"), ("churn", "5"), ("fraud", "4")]
    assert {query["$top"] for _, query in version_lists(fake)} == {"3"}, "a page no larger than the bound"


def test_pages_are_followed_through_next_link_only_while_versions_are_new_enough(
    platform: AzureMLPlatform, fake: LocalAzureML,
) -> None:
    count = PAGE * 2 + 5
    for number in range(1, count + 1):
        register(fake, "churn", str(number), number)
    for number in range(1, count + 1):
        register(fake, "old", str(number), -1000 + number)

    found = platform.list_model_versions("dev", T0, 200)

    assert [m.version for m in found] == [str(n) for n in range(count, 0, -1)]
    churn = [query for path, query in version_lists(fake) if path.startswith("churn/")]
    old = [query for path, query in version_lists(fake) if path.startswith("old/")]
    assert len(churn) == 3, "three pages of versions, the next ones through nextLink"
    assert "$skipToken" not in churn[0] and all("$skipToken" in query for query in churn[1:])
    assert all(query["$top"] == str(PAGE) and query["$orderBy"] == "createdtime desc" for query in churn)
    assert len(old) == 1, "a model whose newest versions are older than `since` costs one page"


def test_archived_versions_and_models_the_names_leave_out_are_not_listed(
    platform: AzureMLPlatform, fake: LocalAzureML,
) -> None:
    register(fake, "churn", "1", 1)
    register(fake, "churn", "2", 2, archived=True)
    register(fake, "fraud", "1", 3)

    found = platform.list_model_versions("dev", T0, 10, names=("churn*",))

    assert [(m.name, m.version) for m in found] == [("churn", "1")]
    assert [path for path, _ in version_lists(fake)] == ["churn/versions"], "fraud's versions are not asked for"


def test_an_empty_workspace_lists_nothing_and_a_registry_is_not_listed(
    platform: AzureMLPlatform, fake: LocalAzureML,
) -> None:
    assert platform.list_model_versions("dev", T0, 10) == []
    assert platform.list_model_versions("dev", T0, 0) == []
    with pytest.raises(ConfigurationError, match="only a workspace's"):
        platform.list_model_versions("registry:mlops-registry", T0, 10)
