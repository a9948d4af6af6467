"""Answers and refusals in Azure's shape.

Azure ML's management front end refuses with code `UserError`, a generic message, the
specific reason nested in `details` (each with its own empty `details` and
`additionalInfo`), and `additionalInfo` naming the component, region and time. Recorded:
a versions list of a model that does not exist (`Azure/azure-sdk-assets`,
`python/sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/test_model.pyTestModeltest_models_get_latest_label.json`),
kept as `tests/fidelity/recordings/model_versions_missing_container.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

NOT_FOUND_MESSAGE = "The specified resource was not found."
REGION = "eastus"


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error answered by Azure Resource Manager itself (not Azure ML): code and message only."""
    return Reply(status, {"error": {"code": code, "message": message}}, headers or {})


def additional_info() -> list[dict[str, Any]]:
    """What Azure ML's management front end adds to every refusal (component, region, time)."""
    now = datetime.now(UTC).isoformat()
    return [
        {"type": "ComponentName", "info": {"value": "managementfrontend"}},
        {"type": "Environment", "info": {"value": REGION}},
        {"type": "Location", "info": {"value": REGION}},
        {"type": "Time", "info": {"value": now}},
    ]


class AzureError(Exception):
    """A refusal, answered as Azure ML answers it: status, code, message and nested details."""

    def __init__(
        self, status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None,
        inner: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
        info: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.inner, self.headers, self.info = details or [], inner, headers or {}, info

    def reply(self) -> Reply:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details or self.info is not None:
            error["details"] = self.details
        if self.inner:
            error["innerError"] = self.inner
        if self.info is not None:
            error["additionalInfo"] = self.info
        return Reply(self.status, {"error": error}, self.headers)


def detail(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    """One nested reason, in the recorded shape."""
    found: dict[str, Any] = {"code": code, "message": message}
    if target:
        found["target"] = target
    return {**found, "details": [], "additionalInfo": []}


def user_error(message: str, inner_code: str, *, status: int = 400, target: str | None = None) -> AzureError:
    """Azure ML's usual refusal of a request: code UserError, the specific reason nested inside."""
    return AzureError(
        status, "UserError", message, details=[detail(inner_code, message, target)], inner={"code": inner_code},
        info=additional_info(),
    )


def not_found(inner_code: str, message: str) -> AzureError:
    """Azure ML's 404: `UserError` / "The specified resource was not found." with the reason nested (recorded)."""
    return AzureError(
        404, "UserError", NOT_FOUND_MESSAGE, details=[detail(inner_code, message)], info=additional_info()
    )


def endpoint_not_found(endpoint: str, workspace: str) -> AzureError:
    """The 404 of an online or batch endpoint that does not exist, as recorded.

    Message, empty details and the nested NotFound / EndpointNotFound in additionalInfo:
    `Azure/azure-sdk-assets`,
    `python/sdk/ml/azure-ai-ml/tests/recordings/batch_services/e2etests/test_batch_endpoint.pyTestBatchEndpointtest_batch_endpoint_create.json`.
    """
    inner = {"code": "NotFound", "innerError": {"code": "EndpointNotFound", "innerError": None}}
    return AzureError(
        404, "UserError",
        f"An endpoint with the name '{endpoint}' does not exist in the workspace '{workspace}'. Please check the "
        "endpoint name and also ensure the current user has access to it.",
        info=[*additional_info(), {"type": "InnerError", "info": {"value": inner}}],
    )
