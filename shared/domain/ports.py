"""The ML platform port: everything the reactions need from Azure ML, and nothing more; and `Busy`,
which every port raises when what it is asked for is held or busy right now.

One adapter implements it, `shared.adapters.azureml`, through `azure-ai-ml`: against Azure,
and locally against the local Azure ML service (`localaml/`). Unit tests use fakes of it.
Workspaces are named by their logical name from the settings (`dev`, `prod`, ...);
the registry by its name. Jobs and deployments take deterministic names chosen by the
caller, and every write is idempotent: repeating it finds the earlier result.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.people import Person

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")

Clock = Callable[[], datetime]
"""What time it is, timezone-aware (UTC). The reactor reads the time only through `Services.clock`, so
that a test moves it instead of waiting for it."""


class Busy(Exception):
    """Busy, try later: someone else holds it or it is busy right now, and the same request may well succeed
    a little later. Contention, not failure.

    The state store raises it for a record changed under its writer or a lease held by another, the
    controllers for a model version or an endpoint that another holds, the platform (as `TryLater`) for a
    resource busy with another operation or throttled. The worker delivers a busy work item again later, the
    timers take it at their next run, the admin API answers 409 (503 for the platform's throttling), with
    `Retry-After` when `retry_after` (seconds) says how long to wait.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PlatformError(Exception):
    """A platform call failed; subclasses say how the caller should react."""


class NotFound(PlatformError):
    """The model, job, endpoint or deployment does not exist."""


class TryLater(Busy, PlatformError):
    """The platform is busy with this resource (409, endpoint `Updating`, throttled).

    Its own class because callers tell it apart: it is a PlatformError (the platform's retries and the
    handlers of platform errors take it with the others), the admin API answers its throttling (with
    `retry_after`) 503, and the controller waits for an endpoint another rollout holds but retries a busy
    platform soon.
    """


class Transient(PlatformError):
    """A fault worth retrying by the platform's own retry (5xx, timeout)."""


class ConfigurationError(PlatformError):
    """The app cannot reach or is not allowed to use the platform (auth, settings)."""


class UnknownLocation(ConfigurationError):
    """A workspace name the settings do not configure: the app's mistake in its policy, a caller's in a request."""


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
        """Map Azure ML's status words (any case) onto the five the app reasons with.

        Every word of the REST `JobStatus` enum is known (Azure/azure-rest-api-specs, machinelearningservices
        mfe.json `JobStatus`, as generated into azure-ai-ml `_restclient/arm_ml_service/models/_enums.py`).
        `NotResponding` is not an end: "a run can go from NotResponding to any of the previous states", so it
        stays running. `Paused` (paused by a user) and `Unknown` (a status not mapped yet) are not ends either:
        the job is waited on as queued.
        """
        word = value.strip().lower()
        aliases = {
            "notstarted": cls.QUEUED, "queued": cls.QUEUED, "preparing": cls.QUEUED,
            "provisioning": cls.QUEUED, "starting": cls.QUEUED, "paused": cls.QUEUED, "unknown": cls.QUEUED,
            "running": cls.RUNNING, "finalizing": cls.RUNNING, "cancelrequested": cls.RUNNING,
            "notresponding": cls.RUNNING,
            "completed": cls.COMPLETED, "succeeded": cls.COMPLETED,
            "failed": cls.FAILED,
            "canceled": cls.CANCELED, "cancelled": cls.CANCELED,
        }
        if word not in aliases:
            raise ValueError(f"unknown job status {value!r}")
        return aliases[word]


# Provisioning states of online deployments and endpoints (REST `DeploymentProvisioningState`:
# Creating, Deleting, Scaling, Updating, Succeeded, Failed, Canceled; `EndpointProvisioningState` has
# all but Scaling). An operation that failed or was canceled will not finish by waiting.
BUSY_STATES = frozenset({"creating", "deleting", "scaling", "updating"})
ENDED_BADLY = frozenset({"failed", "canceled"})


class ModelVersion(BaseModel):
    """A model version in a workspace or registry."""

    location: str = Field(description="logical workspace name, or 'registry:<name>'")
    name: str
    version: str
    tags: dict[str, str] = Field(default_factory=dict)
    uri: str = Field("", description="azureml:// URI that deployments reference")
    created_by: str | None = Field(None, description="who registered it (systemData.createdBy)")
    modified_by: str | None = Field(None, description="who changed it last, tags included (systemData.lastModifiedBy)")
    job_name: str | None = Field(None, description="the job whose output it is, when registered from one")
    created_at: datetime | None = Field(
        None, description="when it was registered (systemData.createdAt); set by `list_model_versions`")


class Job(BaseModel):
    workspace: str
    name: str
    status: JobStatus
    experiment: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    log: str | None = Field(None, description="a failed job's last log lines (its, or its failed step's, "
                                              "user_logs/std_log.txt)")
    studio_url: str | None = None


class DeploymentSpec(BaseModel):
    """How a model version is deployed to a managed online endpoint.

    A model that is not an MLflow model (the ONNX models here) needs an environment and
    scoring code: Azure refuses its deployment without them ("Deploy machine learning
    models to online endpoints", Azure ML docs). The defaults are the repo's scoring
    environment and script, registered by `tools.register_assets`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_type: str = Field("Standard_DS3_v2", pattern=r"^[A-Za-z0-9_]{1,64}$")
    instance_count: int = Field(1, ge=1, le=20)
    environment: str | None = Field("azureml:onnx-runtime:1", description="None for an MLflow model")
    code: str | None = Field("azureml:onnx-score:1", description="the scoring code asset; None for an MLflow model")
    scoring_script: str = Field("score.py", pattern=r"^[A-Za-z0-9_./-]{1,128}\.py$")
    collect_predictions: bool = Field(False, description="turn on Azure ML's data collector (model_inputs, "
                                                         "model_outputs); on by itself when the mirror phase "
                                                         "compares predictions")


class Deployment(BaseModel):
    name: str
    model_uri: str
    provisioning_state: str = Field("Succeeded", description="as Azure spells it, Scaling and Canceled included")

    @property
    def is_busy(self) -> bool:
        """An operation on the deployment is under way (creating, updating, scaling, deleting)."""
        return self.provisioning_state.lower() in BUSY_STATES

    @property
    def has_failed(self) -> bool:
        """Its last operation failed or was canceled: waiting will not make it succeed."""
        return self.provisioning_state.lower() in ENDED_BADLY


class Endpoint(BaseModel):
    workspace: str
    name: str
    provisioning_state: str = "Succeeded"
    traffic: dict[str, int] = Field(default_factory=dict)
    mirror_traffic: dict[str, int] = Field(default_factory=dict)
    deployments: list[Deployment] = Field(default_factory=list)

    @property
    def is_updating(self) -> bool:
        return self.provisioning_state.lower() in BUSY_STATES


class DeploymentMetrics(BaseModel):
    """Live health of one deployment over a window: totals for the absolute gates, and the same
    minutes as series (Azure Monitor's PT1M grain) to compare a canary with its champion.

    `minutes` are the starts of the window's minutes; `requests_per_minute` and `errors_per_minute`
    (5xx answers) have one count per minute; `series` has one value per minute of each other metric
    asked for (None where the minute has none, e.g. a latency percentile without requests)."""

    requests: int = 0
    errors: int = 0
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    window_start: datetime | None = None
    minutes: list[datetime] = Field(default_factory=list)
    requests_per_minute: list[float] = Field(default_factory=list)
    errors_per_minute: list[float] = Field(default_factory=list)
    series: dict[str, list[float | None]] = Field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class CollectedPrediction(BaseModel):
    """One row a deployment's data collector logged: its id column, when, the class it predicted and its score."""

    model_config = ConfigDict(frozen=True)

    id: str | None = Field(None, description="the per-request id column (`correlationid`), None when not logged")
    time: datetime
    label: str | None = Field(None, description="the predicted class, None for a regression")
    score: float | None = Field(None, description="the positive class's probability, or a regression's value")


class PredictionLogs(Protocol):
    """What deployments' data collectors logged (Azure ML's `model_outputs` collection in the workspace's blob
    storage). May raise a PlatformError."""

    def collected(self, workspace: str, endpoint: str, deployment: str, since: datetime,
                  until: datetime) -> list[CollectedPrediction]:
        """The rows `deployment` logged from `since` to `until`, oldest first (at most a bounded number)."""
        ...


class MLPlatform(Protocol):
    """What the reactions need from Azure ML. Every method may raise a PlatformError."""

    def get_model(self, location: str, name: str, version: str) -> ModelVersion: ...

    def set_model_tags(self, location: str, name: str, version: str, tags: dict[str, str]) -> None: ...

    def list_model_versions(
        self, location: str, since: datetime, limit: int, *, before: datetime | None = None,
        names: Sequence[str] = (),
    ) -> list[ModelVersion]:
        """The active versions of the workspace `location`'s models created at or after `since` (and at or
        before `before`, when given), newest first across models, at most `limit`; each with `created_at`.

        `names` are fnmatch patterns of the model names worth listing (every model when empty). The cost is
        a listing of the workspace's models and, per model that matches, a page of its newest versions
        (more pages only while they are newer than `since`), never every version ever registered.
        """
        ...

    def submit_job(
        self, workspace: str, job_name: str, pipeline: str, inputs: dict[str, str], tags: dict[str, str]
    ) -> Job:
        """Submit a pipeline job named `job_name`; if it exists already, return it."""
        ...

    def get_job(self, workspace: str, job_name: str) -> Job: ...

    def cancel_job(self, workspace: str, job_name: str) -> None:
        """Ask the job to stop (not awaited: it reads CancelRequested, then Canceled); a job that has ended stays
        as it ended."""
        ...

    def promote_model(
        self, model: ModelVersion, target: str, lineage: dict[str, str] | None = None
    ) -> ModelVersion:
        """Copy a model version to `target` (a workspace or 'registry:<name>'), then merge `lineage`
        (where it came from, its evidence) into the copy's tags; idempotent."""
        ...

    def get_endpoint(self, workspace: str, endpoint: str) -> Endpoint: ...

    def create_deployment(
        self, workspace: str, endpoint: str, deployment: str, model: ModelVersion, spec: DeploymentSpec
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
        self, workspace: str, endpoint: str, deployment: str, since: datetime, until: datetime | None = None,
        metrics: Sequence[str] = (),
    ) -> DeploymentMetrics:
        """The deployment's requests, errors and latency from `since` to `until` (now when None), in
        totals and per minute; `metrics` names more Azure Monitor metrics to return as series."""
        ...

    def download_model(self, model: ModelVersion, destination: Path) -> Path:
        """Download the model's files under `destination`; return the path of its ONNX file."""
        ...

    def invoke_batch_endpoint(self, workspace: str, endpoint: str, job_name: str, input_uri: str) -> Job:
        """Start a batch-endpoint scoring job for inputs too big for Functions; idempotent by name."""
        ...


class TokenRefused(Exception):
    """A bearer token the app cannot accept: not a JWT, badly signed, expired, for another app or tenant."""


class IdentityUnavailable(Exception):
    """The identity provider's keys cannot be read right now, so no token can be verified."""


class TokenVerifier(Protocol):
    """Verifies an access token and says who carries it (the Entra adapter; a fake in unit tests)."""

    def verify(self, token: str) -> Person:
        """The verified person; TokenRefused when the token cannot be accepted, IdentityUnavailable when
        the provider's keys cannot be read."""
        ...
