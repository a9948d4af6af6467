"""The app's two records, typed: a model version's lifecycle and an endpoint's rollout.

One enum each for the lifecycle's stage and the rollout's state, phase, admin actions and history
entries: the state machines, the admin API's models, its OpenAPI document and the state store all use
these. Records are stored as JSON (`model_dump(mode="json")`) and read back with `model_validate`;
fields a newer version of the app added are kept (`extra="allow"`).
"""

from __future__ import annotations

import copy
import enum
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, field_validator

from shared.domain.analysis import Analysis, Result
from shared.domain.decisions import Verdict
from shared.domain.notification import Table
from shared.domain.policy import MAX_SECONDS, RolloutPlan

Timestamp = Annotated[datetime, PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json")]
"""A time in one of the app's plain documents (a champion, a work failure, a claim check...), stored as
`datetime.isoformat` writes it, as those documents always kept it (the records here keep pydantic's form)."""


class Stage(enum.StrEnum):
    """Where a model version is: testing -> passed | failed -> [awaiting_review -> rejected | expired]
    -> promoted -> rolling_out -> live | rolled_back; a live version that another replaces becomes
    superseded, then retired once its deployment is deleted. A promoted version that a newer one
    overtakes while it waits is superseded without ever being deployed, and so is a version still
    testing when a newer one has passed (its test job canceled)."""

    TESTING = "testing"
    PASSED = "passed"
    FAILED = "failed"
    AWAITING_REVIEW = "awaiting_review"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PROMOTED = "promoted"
    ROLLING_OUT = "rolling_out"
    LIVE = "live"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    RETIRED = "retired"


class RolloutState(enum.StrEnum):
    PROGRESSING = "progressing"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        """Whether the rollout still owns its endpoint (another cannot start)."""
        return self in (RolloutState.PROGRESSING, RolloutState.PAUSED, RolloutState.AWAITING_APPROVAL,
                        RolloutState.ROLLING_BACK)

    @property
    def has_ended(self) -> bool:
        return self in (RolloutState.SUCCEEDED, RolloutState.ROLLED_BACK, RolloutState.FAILED)


class Phase(enum.StrEnum):
    PROVISIONING = "provisioning"
    MIRROR = "mirror"
    STEP = "step"


class RolloutAction(enum.StrEnum):
    """What an admin may do to a rollout (see `shared.domain.rollout.act`)."""

    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    PROMOTE = "promote"
    ABORT = "abort"
    UNDO = "undo"


class HistoryAction(enum.StrEnum):
    """What an entry of a rollout's history records: the engine's steps, an analysis and its result, an
    admin's action (every `RolloutAction` is one), and how the rollout ended."""

    START = "start"
    MIRROR = "mirror"
    STEP = "step"
    ANALYSIS_PASS = "analysis:pass"
    ANALYSIS_FAIL = "analysis:fail"
    ANALYSIS_INCONCLUSIVE = "analysis:inconclusive"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    UNDO = "undo"
    ROLLBACK_PENDING = "rollback-pending"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    RETIRED = "retired"

    @classmethod
    def analysis(cls, result: Result) -> HistoryAction:
        """The entry of an analysis with this result."""
        return next(action for action, found in _ANALYSES.items() if found == result)

    @property
    def analysis_result(self) -> Result | None:
        """`pass`, `fail` or `inconclusive` for an analysis entry; None for any other."""
        return _ANALYSES.get(self)


_ANALYSES: dict[HistoryAction, Result] = {HistoryAction.ANALYSIS_PASS: "pass", HistoryAction.ANALYSIS_FAIL: "fail",
                                          HistoryAction.ANALYSIS_INCONCLUSIVE: "inconclusive"}


class Record(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=False)

    def stored(self) -> dict[str, Any]:
        """The JSON document kept in the state store."""
        return self.model_dump(mode="json")


class StageEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    stage: Stage
    time: datetime
    cause: str
    reason: str


class ReviewDecision(BaseModel):
    """A person's decision on a version that waits for review, and how it was given."""

    approved: bool
    by: str
    at: datetime
    reason: str = ""
    via: str = Field(description="`api` (the admin API or CLI, a verified person) or `tag` (the version's tag in "
                                 "Azure ML studio: by tag, role not verified)")
    by_oid: str | None = Field(None, description="the approver's Entra object id, from their verified token (api)")


class Lifecycle(Record):
    """One model version's way from registration to serving (key `<model>:<version>`)."""

    model: str
    version: str
    workspace: str = Field(description="where the version was registered")
    uri: str = ""
    rule: str
    stage: Stage
    test_job: str = ""
    test_job_url: str | None = Field(None, description="the test job in Azure ML studio, once it has been judged")
    test_job_log: str | None = Field(None, description="a failed test job's last log lines, as Azure ML kept them")
    history: list[StageEntry] = Field(default_factory=list)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    gates: Table | None = Field(None, description="the gate table, for people: header and rows")
    verdict: Verdict | None = Field(None, description="each gate's result, which the gate table is built from "
                                                      "(absent for versions judged before it was kept)")
    promoted_to: dict[str, str] = Field(default_factory=dict, description="registry -> URI of the copy")
    serving_uri: str | None = None
    serving_location: str | None = None
    rollout: str | None = Field(None, description="the id of its rollout, once one started")
    rollout_key: str | None = Field(None, description="the state key of its endpoint's rollout")
    deployment: str | None = None
    superseded_by: str | None = None
    registered_by: str | None = Field(None, description="who registered the version (Azure ML's systemData)")
    training_job: str | None = Field(None, description="the job that produced the version, when Azure ML knows it")
    awaiting_since: datetime | None = None
    reminded: bool = False
    review: ReviewDecision | None = None
    refused_approval_by: str | None = Field(None, description="a tag approval refused under four eyes")

    @property
    def key(self) -> str:
        return f"{self.model}:{self.version}"


class Split(BaseModel):
    """Live and mirrored traffic, deployment -> percent."""

    traffic: dict[str, int] = Field(default_factory=dict)
    mirror: dict[str, int] = Field(default_factory=dict)

    def live(self) -> tuple[dict[str, int], dict[str, int]]:
        """The deployments that take a share; a 0 % entry may name one retired since."""
        return _nonzero(self.traffic), _nonzero(self.mirror)


def _nonzero(split: dict[str, int]) -> dict[str, int]:
    return {name: share for name, share in split.items() if share}


class RolloutEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    time: datetime
    action: HistoryAction
    actor: str
    reason: str
    traffic: dict[str, int] | None = None
    mirror: dict[str, int] | None = None
    metrics: dict[str, Any] | None = None
    analysis: Analysis | None = Field(None, description="an analysis entry's table (without its series)")


_SECONDS_FIELDS = ("bake_seconds", "retire_previous_after_seconds")


class Rollout(Record):
    """One endpoint's progressive rollout of a deployment (key `<workspace>.<endpoint>`)."""

    id: str
    key: str
    workspace: str
    endpoint: str
    deployment: str
    rule: str
    model: str
    version: str
    plan: RolloutPlan
    baseline: Split
    state: RolloutState
    phase: Phase
    step: int = Field(-1, description="the index in plan.steps of the current step; -1 before the first")
    target: Split | None = Field(None, description="the traffic the last change asked for")
    step_started: datetime | None = None
    failures: int = 0
    inconclusive: int = 0
    approved: list[int] = Field(default_factory=list)
    skip_analysis: bool = False
    retire_at: datetime | None = None
    retired: bool = False
    started: datetime
    finished: datetime | None = None
    rollback_reason: str = ""
    rollback_metrics: dict[str, Any] | None = None
    analysis: Analysis | None = Field(None, description="the latest analysis, with both deployments' series")
    history: list[RolloutEntry] = Field(default_factory=list)

    @property
    def percent(self) -> int:
        return self.plan.steps[self.step] if self.step >= 0 else 0

    @field_validator("plan", mode="before")
    @classmethod
    def _bounded_plan(cls, stored: Any) -> Any:
        """A plan stored before the policy had its bounds is held to them (a number over its bound, or a
        seconds field that is not finite, becomes the bound) instead of failing every tick of its endpoint."""
        if not isinstance(stored, dict):
            return stored
        try:
            RolloutPlan.model_validate(stored)
        except ValidationError as error:
            bounded = copy.deepcopy(stored)
            for item in error.errors():
                bound = _bound(item)
                if bound is None:
                    return stored  # not a matter of bounds: let validation name it
                _put(bounded, item["loc"], bound)
            return bounded
        return stored


def _bound(item: Any) -> float | None:
    """The bound an out-of-range stored number is held to, or None when the error is another."""
    if item["type"] == "less_than_equal":
        return float(item["ctx"]["le"])
    if item["type"] == "finite_number" and item["loc"] and item["loc"][-1] in _SECONDS_FIELDS:
        return float(MAX_SECONDS)
    return None


def _put(document: Any, loc: tuple[str | int, ...], value: float) -> None:
    for part in loc[:-1]:
        document = document[part]
    document[loc[-1]] = value


class AuditEntry(BaseModel):
    """One decision or action, with why it happened and what caused it."""

    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str
    subject: str
    action: str
    outcome: str
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    by: str | None = Field(None, description="the verified person who asked for it (their display name)")
    by_oid: str | None = Field(None, description="their Entra object id, which the token proved")
