"""Request and response models of the admin API. Every name that ends up in a path or URL
is checked here, so a handler only ever sees names that are safe to use."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.policy import RolloutPlan
from shared.storage.state import AuditEntry

# Azure ML asset names (SAFE_NAME), short enough for the state store's keys.
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Workspace = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]  # settings.LOGICAL_NAME
Location = Annotated[str, StringConstraints(pattern=r"^(registry:)?[a-z][a-z0-9-]{0,31}$")]
RegistryLocation = Annotated[str, StringConstraints(pattern=r"^registry:[a-z][a-z0-9-]{0,31}$")]
RuleName = Workspace
# Azure ML online endpoint and deployment names: 3-32 letters, digits and '-', from a letter.
ENDPOINT = re.compile(r"^[A-Za-z][A-Za-z0-9-]{2,31}$")
EndpointName = Annotated[str, StringConstraints(pattern=ENDPOINT.pattern)]
DeploymentName = EndpointName
Percent = Annotated[int, Field(ge=0, le=100, strict=True)]
StateKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:=@-]{0,200}$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
Action = Literal["pause", "resume", "approve", "promote", "abort", "undo"]  # engine.ACTIONS
RolloutState = Literal["progressing", "paused", "awaiting_approval", "rolling_back", "succeeded", "rolled_back",
                       "failed"]
Stage = Literal["testing", "passed", "failed", "promoted", "superseded", "rolling_out", "live", "rolled_back"]
MAX_DEPLOYMENTS = 20  # Azure ML's limit of deployments per online endpoint


class Input(BaseModel):
    """Requests refuse unknown fields, so a misspelt one is named instead of ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(BaseModel):
    """Records from the state store keep fields this schema does not list."""

    model_config = ConfigDict(extra="allow")


# Path parameters ----------------------------------------------------------------------


class ModelPath(Input):
    location: Location = Field(description="workspace name or 'registry:<name>' holding the version")
    name: ModelName
    version: Version


class EndpointPath(Input):
    workspace: Workspace
    endpoint: EndpointName


class ActionPath(EndpointPath):
    action: Action


class LifecyclePath(Input):
    name: ModelName
    version: Version


# Query parameters ---------------------------------------------------------------------


class RolloutFilter(Input):
    state: RolloutState | None = None
    endpoint: EndpointName | None = None


class LifecycleFilter(Input):
    stage: Stage | None = None
    model: ModelName | None = None


class AuditFilter(Input):
    since: datetime | None = Field(None, description="ISO date or date-time (UTC when no offset is given)")
    correlation_id: str | None = Field(None, max_length=200)
    subject: str | None = Field(None, max_length=300)
    action: str | None = Field(None, max_length=100)
    limit: int = Field(100, ge=1, le=1000, description="the most recent entries to return")


# Bodies -------------------------------------------------------------------------------


class PromoteRequest(Input):
    targets: list[RegistryLocation] | None = Field(
        None, min_length=1, max_length=10,
        description="registries in order, e.g. ['registry:shared']; the rule's promotion path when omitted "
        "(Azure ML shares a model from a workspace to a registry, never to another workspace)",
    )


class TrafficChange(Input):
    traffic: dict[DeploymentName, Percent] = Field(
        max_length=MAX_DEPLOYMENTS, description="deployment -> live traffic percent, summing to 100")
    mirror_traffic: dict[DeploymentName, Percent] = Field(
        default_factory=dict, max_length=MAX_DEPLOYMENTS,
        description="deployment -> mirrored percent (at most 50, to one deployment without live traffic)")


class ModelRef(Input):
    location: Location = Field(description="where deployments read the version from: workspace or 'registry:<name>'")
    name: ModelName
    version: Version


class StartRollout(Input):
    model: ModelRef
    rule: RuleName = Field(description="the policy rule whose rollout plan (and notifications) apply")
    plan: RolloutPlan | None = Field(None, description="replaces the rule's rollout plan for this rollout")

    @field_validator("plan")
    @classmethod
    def _plan_names(cls, plan: RolloutPlan | None) -> RolloutPlan | None:
        if plan and plan.workspace.startswith("registry:"):
            raise ValueError(f"plan.workspace {plan.workspace!r} is a registry; rollouts go to a workspace")
        if plan and not ENDPOINT.match(plan.endpoint):
            raise ValueError(f"plan.endpoint {plan.endpoint!r} is not an endpoint name ({ENDPOINT.pattern})")
        return plan


class ActionRequest(Input):
    reason: str = Field("", max_length=500, description="why, for the rollout's history and the audit trail")


class RetrainRequest(Input):
    rule: RuleName
    request_id: RequestId = Field(description="names the job: the same id never retrains twice")


class ReplayRequest(Input):
    kind: Literal["rejected", "ignored", "deadletter"]
    key: StateKey = Field(description="the stored event's or work item's key")


class PolicyDraft(Input):
    text: str = Field(max_length=1_000_000, description="the policy YAML")


# Responses ----------------------------------------------------------------------------


class Check(BaseModel):
    ok: bool
    detail: str = ""


class Health(BaseModel):
    ok: bool
    platform: str
    policy: Check
    storage: Check


class Promoted(BaseModel):
    model: str
    version: str
    source: str
    promoted: dict[str, str] = Field(description="target -> URI of the copy")


class EndpointView(BaseModel):
    workspace: str
    name: str
    provisioning_state: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    deployments: dict[str, str] = Field(description="deployment -> provisioning state")


class TrafficApplied(BaseModel):
    workspace: str
    endpoint: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    rollout_state: str | None = Field(description="the endpoint's rollout after the change (paused if it was active)")


class HistoryEntry(Output):
    time: str
    action: str
    actor: str
    reason: str
    traffic: dict[str, int] | None = None
    mirror: dict[str, int] | None = None
    metrics: dict[str, Any] | None = None


class Rollout(Output):
    id: str
    key: str
    workspace: str
    endpoint: str
    deployment: str
    rule: str
    model: str
    version: str
    state: str
    phase: str
    step: int
    plan: dict[str, Any]
    baseline: dict[str, Any]
    target: dict[str, Any] | None = None
    started: str
    finished: str | None = None
    history: list[HistoryEntry]
    live: EndpointView | None = Field(None, description="the endpoint as the platform reports it now")


class Rollouts(BaseModel):
    items: list[Rollout] = Field(description="rollouts without their history, but the last entry")


class Lifecycle(Output):
    model: str
    version: str
    workspace: str
    rule: str
    stage: str
    history: list[dict[str, Any]]


class Lifecycles(BaseModel):
    items: list[Lifecycle]


class AuditEntries(BaseModel):
    items: list[AuditEntry]


class RetrainSubmitted(BaseModel):
    rule: str
    workspace: str
    job: str
    status: str
    studio_url: str | None = None


class Replayed(BaseModel):
    kind: str
    key: str
    outcome: str


class PolicyValid(BaseModel):
    valid: bool
    rules: list[str]


class Error(BaseModel):
    error: str
    field: str | None = Field(None, description="the request field at fault, when there is one")
