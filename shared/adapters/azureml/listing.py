"""Listing a workspace's recent model versions, newest first, through azure-ai-ml.

`MLClient.models.list()` lists a workspace's models (the containers: one per name, with
`latestVersion`, and a `systemData` that does not change when a version is added: recorded,
`test_model.pyTestModeltest_list_no_name.json`); `models.list(name=...)` lists one model's versions
in no stated order and gives no way to ask for one. The REST operation under it
(ModelVersions_List) takes `$orderBy=createdtime desc` and `$top`, and azure-ai-ml asks for them
itself to find label `latest` (`_get_latest` in `azure/ai/ml/_utils/_asset_utils.py`, through
`ModelOperations._model_versions_operation.list(..., order_by=..., top=1)`); this asks the same
operation the same way. Azure answers `$top` items per page and a `nextLink` (with `$skipToken`)
to the next page (recorded: `test_models_get_latest_label.json`), which the SDK's pager follows
only when iterated further: a model whose newest versions are older than `since` costs one page.

Sources: Azure/azure-sdk-assets, python/sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

PAGE = 20
"""Versions per page of one model's listing: most models have a few new versions per period, if any."""
NEWEST_FIRST = "createdtime desc"


def wanted(name: str, patterns: Sequence[str]) -> bool:
    """Whether a model's name matches one of the fnmatch patterns (every name when there are none)."""
    return not patterns or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def created_at(model: Any) -> datetime | None:
    """When an SDK `Model` was registered (its `creation_context.created_at`), timezone-aware."""
    moment = getattr(getattr(model, "creation_context", None), "created_at", None)
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def newest_versions(client: Any, resource_group: str, workspace: str, name: str, limit: int) -> Iterable[Any]:
    """One model's active versions as SDK `Model`s, newest first, fetched a page at a time as iterated."""
    from azure.ai.ml.entities import Model

    operation = client.models._model_versions_operation
    return operation.list(
        name=name, resource_group_name=resource_group, workspace_name=workspace,
        order_by=NEWEST_FIRST, top=max(1, min(limit, PAGE)), list_view_type="ActiveOnly",
        cls=lambda found: [Model._from_rest_object(item) for item in found],
    )


def recent(versions: Iterable[Any], since: datetime, before: datetime | None, limit: int,
           convert: Callable[[Any], Any]) -> list[Any]:
    """The versions (newest first) created in [since, before], at most `limit`; stops reading at the first
    one older than `since`, so no page past it is fetched."""
    found: list[Any] = []
    for model in versions:
        moment = created_at(model)
        if moment is None:
            continue
        if before is not None and moment > before:
            continue
        if moment < since or len(found) >= limit:
            break
        found.append(convert(model))
    return found
