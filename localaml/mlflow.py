"""MLflow tracking REST: runs and their metrics, as azureml-mlflow's tracking server answers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply

if TYPE_CHECKING:
    from localaml.service import LocalAzureML


def install(service: LocalAzureML) -> None:
    service.route("GET", r"^/mlflow/v1\.0/.+/api/2\.0/mlflow/runs/get$", lambda **kw: mlflow_get(service, **kw))
    service.route("POST", r"^/mlflow/v1\.0/.+/api/2\.0/mlflow/runs/search$", lambda **kw: mlflow_search(service, **kw))


def mlflow_get(service: LocalAzureML, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
    run = service.runs.get(query.get("run_id", ""))
    if run is None:
        return Reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"})
    return Reply(200, {"run": run})

def mlflow_search(service: LocalAzureML, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
    match = re.search(r"tags\.mlflow\.parentRunId\s*=\s*'([^']+)'", body.get("filter", ""))
    parent = match.group(1) if match else None
    runs = [r for r in service.runs.values() if _tag(r, "mlflow.parentRunId") == parent]
    return Reply(200, {"runs": runs} if runs else {})


def _tag(run: dict[str, Any], key: str) -> str | None:
    for tag in run.get("data", {}).get("tags", []):
        if tag["key"] == key:
            return tag["value"]
    return None


