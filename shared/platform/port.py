"""The ML platform port: everything the reactions need from Azure ML, and nothing more.

Two adapters implement it: `shared.platform.sandbox` (local, real work on Azurite and
ONNX Runtime) and `shared.platform.azureml` (production, through `azure-ai-ml`).
Workspaces are named by their logical name from the settings (`dev`, `prod`, ...);
the registry by its name. Jobs and deployments take deterministic names chosen by the
caller, and every write is idempotent: repeating it finds the earlier result.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


class PlatformError(Exception):
    """A platform call failed; subclasses say how the caller should react."""


class NotFound(PlatformError):
    """The model, job, endpoint or deployment does not exist."""


class TryLater(PlatformError):
    """The platform is busy with this resource (409, endpoint `Updating`, throttled)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Transient(PlatformError):
    """A fault worth retrying by the platform's own retry (5xx, timeout)."""


class ConfigurationError(PlatformError):
    """The app cannot reach or is not allowed to use the platform (auth, settings)."""


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)

    @classmethod
    def parse(cls, value: str) -> JobStatus:
        """Map Azure ML's status words (any case) onto the five the app reasons with."""
        word = value.strip().lower()
        aliases = {
            "notstarted": cls.QUEUED, "queued": cls.QUEUED, "preparing": cls.QUEUED,
            "provisioning": cls.QUEUED, "starting": cls.QUEUED,
            "running": cls.RUNNING, "finalizing": cls.RUNNING, "cancelrequested": cls.RUNNING,
            "completed": cls.COMPLETED, "succeeded": cls.COMPLETED,
            "failed": cls.FAILED, "notresponding": cls.FAILED,
            "canceled": cls.CANCELED, "cancelled": cls.CANCELED,
        }
        if word not in aliases:
            raise ValueError(f"unknown job status {value!r}")
        return aliases[word]


class ModelVersion(BaseModel):
    """A model version in a workspace or registry."""

    location: str = Field(description="logical workspace name, or 'registry:<name>'")
    name: str
    version: str
    tags: dict[str, str] = Field(default_factory=dict)
    uri: str = Field("", description="azureml:// URI that deployments reference")


class Job(BaseModel):
    workspace: str
    name: str
    status: JobStatus
    experiment: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    studio_url: str | None = None


class Deployment(BaseModel):
    name: str
    model_uri: str
    provisioning_state: str = "Succeeded"


class Endpoint(BaseModel):
    workspace: str
    name: str
    provisioning_state: str = "Succeeded"
    traffic: dict[str, int] = Field(default_factory=dict)
    mirror_traffic: dict[str, int] = Field(default_factory=dict)
    deployments: list[Deployment] = Field(default_factory=list)

    @property
    def is_updating(self) -> bool:
        return self.provisioning_state.lower() in ("updating", "creating", "deleting")


class DeploymentMetrics(BaseModel):
    """Live health of one deployment over a window, for rollout gates."""

    requests: int = 0
    errors: int = 0
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    window_start: datetime | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class MLPlatform(Protocol):
    """What the reactions need from Azure ML. Every method may raise a PlatformError."""

    def get_model(self, location: str, name: str, version: str) -> ModelVersion: ...

    def set_model_tags(self, location: str, name: str, version: str, tags: dict[str, str]) -> None: ...

    def submit_job(
        self, workspace: str, job_name: str, pipeline: str, inputs: dict[str, str], tags: dict[str, str]
    ) -> Job:
        """Submit a pipeline job named `job_name`; if it exists already, return it."""
        ...

    def get_job(self, workspace: str, job_name: str) -> Job: ...

    def promote_model(self, model: ModelVersion, target: str) -> ModelVersion:
        """Copy a model version to `target` (a workspace or 'registry:<name>'); idempotent."""
        ...

    def get_endpoint(self, workspace: str, endpoint: str) -> Endpoint: ...

    def create_deployment(
        self, workspace: str, endpoint: str, deployment: str, model: ModelVersion, instance_type: str = ""
    ) -> None:
        """Start creating a deployment (not awaited); an existing one is left as it is."""
        ...

    def delete_deployment(self, workspace: str, endpoint: str, deployment: str) -> None: ...

    def set_traffic(
        self, workspace: str, endpoint: str, traffic: dict[str, int], mirror_traffic: dict[str, int]
    ) -> None:
        """Start a traffic update (not awaited). Raises TryLater while the endpoint is updating."""
        ...

    def get_deployment_metrics(
        self, workspace: str, endpoint: str, deployment: str, since: datetime
    ) -> DeploymentMetrics: ...

    def download_model(self, model: ModelVersion, destination: Path) -> Path:
        """Download the model's files under `destination`; return the path of its ONNX file."""
        ...

    def invoke_batch_endpoint(self, workspace: str, endpoint: str, job_name: str, input_uri: str) -> Job:
        """Start a batch-endpoint scoring job for inputs too big for Functions; idempotent by name."""
        ...
