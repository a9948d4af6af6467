"""Request and response models of the admin API. Every name that ends up in a path or URL
is checked here, so a handler only ever sees names that are safe to use."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.domain.champions import ChampionHistory as ChampionHistoryRecord
from shared.domain.policy import RolloutPlan
from shared.domain.records import AuditEntry, RolloutAction, RolloutState, Stage
from shared.domain.records import Lifecycle as LifecycleRecord
from shared.domain.records import Rollout as RolloutRecord

# Azure ML asset names (SAFE_NAME), short enough for the state store's keys.
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Workspace = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]  # domain.names.LOGICAL_NAME
Location = Annotated[str, StringConstraints(pattern=r"^(registry:)?[a-z][a-z0-9-]{0,31}$")]
RegistryLocation = Annotated[str, StringConstraints(pattern=r"^registry:[a-z][a-z0-9-]{0,31}$")]
RuleName = Workspace
# Azure ML's rule for online endpoint and deployment names: 3 to 32 characters, a letter first, letters, digits
# and hyphens, never a hyphen last (Azure refuses `blue-`: such a name could only ever answer 404).
ENDPOINT = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
EndpointName = Annotated[str, StringConstraints(pattern=ENDPOINT.pattern)]
DeploymentName = EndpointName
Percent = Annotated[int, Field(ge=0, le=100, strict=True)]
StateKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:=@-]{0,200}$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
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
    action: RolloutAction


class HistoryPath(EndpointPath):
    action: Literal["history"] = Field(description="`history`: every finished rollout of the endpoint")


class LifecyclePath(Input):
    name: ModelName
    version: Version


class ChampionPath(Input):
    rule: RuleName


# Query parameters ---------------------------------------------------------------------


Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,4000}$")]


class Paged(Input):
    """A page of a listing: `next` is the token the previous page gave (its `next`), absent for the first."""

    limit: int = Field(100, ge=1, le=1000, description="the most items in the page")
    next: Token | None = Field(None, description="the `next` of the previous page; absent for the first page")


class RolloutFilter(Paged):
    state: RolloutState | None = None
    endpoint: EndpointName | None = None


class LifecycleFilter(Paged):
    stage: Stage | None = None
    model: ModelName | None = None
    rule: RuleName | None = None


class AuditFilter(Paged):
    since: datetime | None = Field(None, description="ISO date or date-time (UTC when no offset is given)")
    correlation_id: str | None = Field(None, max_length=200)
    subject: str | None = Field(None, max_length=300)
    action: str | None = Field(None, max_length=100)


# Bodies -------------------------------------------------------------------------------


class PromoteRequest(Input):
    targets: list[RegistryLocation] | None = Field(
        None, min_length=1, max_length=10,
        description="registries in order, e.g. ['registry:shared']; the rule's promotion path when omitted "
        "(Azure ML shares a model from a workspace to a registry, never to another workspace)",
    )
    force: bool = Field(False, description="promote a version that has not passed its tests (or review); needs a "
                                           "reason, is audited and ops are told")
    reason: str = Field("", max_length=500, description="why, for a forced promotion")


class ReviewRequest(Input):
    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=500, description="why, for the lifecycle and the audit trail")


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
    restart: bool = Field(False, description="start the version's ended rollout again (with this plan); without "
                                             "it, a version whose rollout has ended answers 409")

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
    full: bool = Field(False, description="promote only: to 100% now, skipping every analysis left (needs a "
                                          "reason); without it promote goes one step")


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


class SignIn(BaseModel):
    """Where people get tokens for the app: what MSAL.js and azure-identity need, and no secret."""

    authority: str = Field(description="the Entra authority, `<host>/<tenant>`")
    tenant_id: str
    client_id: str = Field(description="the app's registration: the audience of its tokens, the control room's client")
    scope: str = Field(description="the scope to ask for, `<client id>/.default`")
    opsctl_client_id: str | None = Field(None, description="the CLI's public client registration")


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
    rollout_state: RolloutState | None = Field(
        description="the endpoint's rollout after the change (paused if it was active)")


class Rollout(RolloutRecord):
    live: EndpointView | None = Field(None, description="the endpoint as the platform reports it now")


NEXT = Field(None, description="the token of the next page (the `next` query parameter); absent on the last page")


class Rollouts(BaseModel):
    items: list[Rollout] = Field(description="rollouts: by endpoint (the listing), newest first (an endpoint's "
                                             "history)")
    next: str | None = NEXT


class Lifecycle(LifecycleRecord):
    """A model version's lifecycle record."""


class Lifecycles(BaseModel):
    items: list[Lifecycle] = Field(description="by model and version (the key)")
    next: str | None = NEXT


class AuditEntries(BaseModel):
    items: list[AuditEntry] = Field(description="the most recent that match, oldest first; `next` gives the ones "
                                                "before them")
    next: str | None = NEXT


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


# Events set aside (rejected, ignored, dead-lettered) ------------------------------------

SetAsideKind = Literal["rejected", "ignored", "deadletter", "invalid"]
"""`invalid`: a stored record that is not valid, left out of listings (key `<kind>/<key>`; not replayable)."""


class SetAsideFilter(Paged):
    kind: SetAsideKind | None = Field(None, description="one kind; every kind when omitted")


class SetAsideItem(BaseModel):
    kind: SetAsideKind
    key: str = Field(description="the key `POST /api/ops/events/replay` takes")
    reason: str
    time: str = Field(description="when it was set aside (ISO 8601)")
    event_id: str = Field(description="the event's id ('' when the stored item has none)")
    event_type: str = Field(description="the event's type ('' when the stored item has none)")
    subject: str


class SetAsideItems(BaseModel):
    items: list[SetAsideItem] = Field(description="newest first, across the kinds")
    next: str | None = NEXT


class ChampionHistory(ChampionHistoryRecord):
    """A rule's champions, oldest first: which version served from when to when, how it came to serve
    and why it stopped (`until` and `ended` are empty for the one serving now)."""
