"""The policy: rules as data, loaded from a YAML file and validated at start.

A rule says which models it applies to (name pattern, tags), how to test them, the
gates a version must pass (absolute thresholds, and comparison with the champion now
serving), where to promote it, how to roll it out, what drift starts retraining, and
which notification channels hear about what. Errors name the rule and the field.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from shared.domain.names import LOGICAL_NAME
from shared.domain.ports import DeploymentSpec

Channel = Literal["teams", "slack", "webhook", "eventgrid", "log"]

# Bounds of every number a rule holds: finite (no infinity or NaN), and small enough for the
# engine's time arithmetic and Azure's own limits. The README lists them.
MAX_SECONDS = 30 * 24 * 3600  # bake and grace periods: at most 30 days
MAX_METRIC = 1e12  # gate thresholds, either sign
MAX_LATENCY_MS = 3_600_000.0  # one hour
MAX_REQUESTS = 1_000_000
MAX_FAILURES = 100
MAX_INCONCLUSIVE = 1_000
MAX_DRIFT = 1e6
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Metric = Annotated[float, Field(ge=-MAX_METRIC, le=MAX_METRIC, allow_inf_nan=False)]
LatencyMs = Annotated[float, Field(gt=0, le=MAX_LATENCY_MS, allow_inf_nan=False)]


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; the message names the rule and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _location(value: str) -> str:
    name = value.removeprefix("registry:")
    if not LOGICAL_NAME.match(name):
        raise ValueError(f"{value!r} is not a workspace name or 'registry:<name>'")
    return value


class ModelSelector(_Strict):
    name: str = Field(description="fnmatch pattern on the model name, e.g. 'credit-*'")
    tags: dict[str, str] = Field(default_factory=dict, description="tags the version must carry")

    def matches(self, model_name: str, tags: dict[str, str]) -> bool:
        return fnmatch.fnmatchcase(model_name, self.name) and all(tags.get(k) == v for k, v in self.tags.items())


class TestPlan(_Strict):
    pipeline: str
    inputs: dict[str, str] = Field(default_factory=dict)
    experiment: str = "model-tests"


class Gate(_Strict):
    """One metric check: `min` / `max` thresholds, or `max_drop` below the champion's value."""

    metric: str
    min: Metric | None = None
    max: Metric | None = None
    max_drop: Metric | None = Field(None, description="fail if champion value - value exceeds this")

    @model_validator(mode="after")
    def _one_check(self) -> Gate:
        if sum(check is not None for check in (self.min, self.max, self.max_drop)) != 1:
            raise ValueError("a gate takes exactly one of min, max, max_drop")
        return self


_DURATION = re.compile(r"^\s*(\d{1,7}(?:\.\d{1,6})?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    """`7d`, `12h`, `30m`, `45s` as seconds; numbers stay as they are (seconds)."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"{value!r} is not a duration: a number of seconds, or a number with s, m, h or d")
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    return value


Duration = Annotated[Seconds, BeforeValidator(_duration)]


class Review(_Strict):
    """A person signs a version off before it is promoted. Through the admin API (`POST
    ops/lifecycles/{name}/{version}/review`, by a signed-in person whose token carries `approvers`), or,
    where `by_tag` allows it, by the tag `tag` set to `approved` / `rejected` on the version in Azure ML
    studio, where the approver is whoever last changed the version (no token: role not verified). With
    `four_eyes`, the identity that registered the version may not approve it.
    """

    required: bool = True
    approvers: str = Field("MLOps.Approver", max_length=120, pattern=r"^[A-Za-z0-9_.:-]{1,120}$",
                           description="the Entra app role an approver's verified token must carry")
    four_eyes: bool = True
    expires_after: Duration = Field(7 * 86400, gt=0, description="a version not reviewed by then expires")
    remind_after: Duration | None = Field(86400, gt=0, description="ops are reminded once after this wait")
    tag: str = Field("mlops.review", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    by_tag: bool = Field(False, description="also take decisions by the tag in Azure ML studio, which carry no "
                                            "verified person (recorded as by tag, role not verified)")


class Promotion(_Strict):
    """Where a passing version is shared: Azure ML registries, in order.

    Azure ML shares a model from a workspace to a registry (`models.share`); it has no
    copy from one workspace to another. Workspaces that serve the model deploy the
    registry's copy (`azureml://registries/<r>/models/...`), so prod needs no copy of its own.
    """

    path: list[str] = Field(min_length=1, description="registries in order, e.g. ['registry:shared']")

    @field_validator("path")
    @classmethod
    def _registries(cls, value: list[str]) -> list[str]:
        for target in value:
            _location(target)
            if not target.startswith("registry:"):
                raise ValueError(
                    f"{target!r} is a workspace: Azure ML promotes to registries ('registry:<name>'); a workspace "
                    "serves a promoted version by deploying the registry's copy (set it in rollout.workspace)"
                )
        return value


class HealthGates(_Strict):
    max_error_rate: float = Field(0.01, ge=0, le=1, allow_inf_nan=False)
    max_latency_p95_ms: LatencyMs | None = None
    max_latency_p99_ms: LatencyMs | None = None
    min_requests: int = Field(20, ge=1, le=MAX_REQUESTS,
                              description="fewer requests in a step is inconclusive, not a pass")


DEPLOYMENT_METRICS: Final = (
    "CpuMemoryUtilizationPercentage", "CpuUtilizationPercentage", "DataCollectionErrorsPerMinute",
    "DataCollectionEventsPerMinute", "DeploymentCapacity", "DiskUtilization", "GpuEnergyJoules",
    "GpuMemoryUtilizationPercentage", "GpuUtilizationPercentage", "RequestLatency_P50", "RequestLatency_P90",
    "RequestLatency_P95", "RequestLatency_P99", "RequestsPerMinute",
)
"""Azure Monitor's metrics of a managed online deployment, as named in its REST API: "Supported metrics for
Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments" (learn.microsoft.com, azure-monitor
reference; MicrosoftDocs/azure-docs includes `microsoft-machinelearningservices-workspaces-onlineendpoints-
deployments-metrics-include.md`). A rule's comparison may name only these, so a typo fails at validation."""
REQUESTS: Final = "RequestsPerMinute"


class MetricComparison(_Strict):
    """One metric of the canary compared with the champion's over the same minutes (Kayenta's metric
    configuration: which direction is bad, how much worse is tolerated, how much it weighs in the score).

    `RequestsPerMinute` is compared normalised by each deployment's traffic share; with `responses: 5xx`
    it is the deployment's server errors as a proportion of its requests (two proportions compared)."""

    metric: str = Field(description="an Azure Monitor metric of online deployments, as its REST API names it",
                        json_schema_extra={"enum": list(DEPLOYMENT_METRICS)})
    responses: Literal["5xx"] | None = Field(None, description="RequestsPerMinute only: count these responses")
    direction: Literal["increase", "decrease"] = Field("increase", description="which change is bad")
    tolerance: float = Field(0.1, ge=0, le=100, allow_inf_nan=False,
                             description="how much worse is tolerated, as a ratio: 0.1 is 10 % worse")
    weight: float = Field(1.0, gt=0, le=1000, allow_inf_nan=False)
    critical: bool = Field(False, description="worse beyond tolerance fails the analysis whatever the score")

    @field_validator("metric")
    @classmethod
    def _documented(cls, value: str) -> str:
        if value not in DEPLOYMENT_METRICS:
            raise ValueError(f"{value!r} is not a metric of an online deployment in Azure Monitor; "
                             f"known: {', '.join(DEPLOYMENT_METRICS)}")
        return value

    @model_validator(mode="after")
    def _responses_of_requests(self) -> MetricComparison:
        if self.responses is not None and self.metric != REQUESTS:
            raise ValueError(f"responses applies to {REQUESTS} only")
        if self.direction == "decrease" and self.tolerance >= 1:
            raise ValueError("a decrease of 100 % or more is not a tolerance: take a tolerance below 1")
        return self

    @property
    def label(self) -> str:
        """The metric as the analysis table names it."""
        return "errors (5xx)" if self.responses else ("request rate" if self.metric == REQUESTS else self.metric)


def _default_comparisons() -> list[MetricComparison]:
    return [
        MetricComparison(metric="RequestLatency_P95", tolerance=0.1, weight=2, critical=True),
        MetricComparison(metric=REQUESTS, responses="5xx", tolerance=1.5, weight=2, critical=True),
        MetricComparison(metric=REQUESTS, direction="decrease", tolerance=0.2, weight=1),
    ]


class Comparison(_Strict):
    """Judge the canary against its champion over the same minutes, sequentially (docs/judging.md).

    `alpha` is the chance, over the whole rollout, that a canary within its tolerances is rolled back
    by this comparison: it is shared out evenly over the plan's phases and the metrics, each tested with
    an anytime-valid test, so looking at every tick does not raise it. A metric passes once the canary
    is shown to be better than `indifference` times its tolerance (10 % and 2 give 20 %); between the
    two is Wald's indifference zone, where neither test has to decide. `beta` is, per phase and metric,
    the chance that a canary worse than that is classified pass. Scores are Kayenta's: the
    weighted share of metrics that pass; at `pass_score` or more the comparison passes, below
    `marginal_score` it fails, between the two it is marginal (the step holds and keeps judging)."""

    metrics: list[MetricComparison] = Field(default_factory=_default_comparisons, min_length=1, max_length=20)
    alpha: float = Field(0.01, gt=0, le=0.2, allow_inf_nan=False)
    beta: float = Field(0.05, gt=0, le=0.5, allow_inf_nan=False)
    indifference: float = Field(2.0, ge=1, le=10, allow_inf_nan=False)
    pass_score: float = Field(95, ge=0, le=100, allow_inf_nan=False)
    marginal_score: float = Field(75, ge=0, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered_scores(self) -> Comparison:
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score must not exceed pass_score")
        return self


class ShadowGate(_Strict):
    """Judge the mirror phase on what the shadow predicts, compared with the champion on the same requests
    (both deployments collect their predictions with Azure ML's data collector; `shared.domain.shadow`).

    It fails when the share of requests they classify differently is above `max_disagreement` with
    `confidence` (the lower bound of its interval is above it), passes when it is below (the upper bound is),
    and waits for more rows otherwise. With `max_psi`, a shift of the score distribution beyond it fails too.
    """

    max_disagreement: float = Field(0.05, ge=0, le=1, allow_inf_nan=False,
                                    description="the share of requests the shadow may classify differently")
    max_psi: float | None = Field(None, gt=0, le=MAX_DRIFT, allow_inf_nan=False,
                                  description="the largest population stability index of the scores")
    confidence: float = Field(0.95, ge=0.5, le=0.9999, allow_inf_nan=False,
                              description="one-sided confidence of each decision")
    min_rows: int = Field(100, ge=1, le=MAX_REQUESTS, description="fewer compared rows is inconclusive")


class MirrorPhase(_Strict):
    percent: int = Field(ge=1, le=50)
    bake_seconds: Seconds = 60
    predictions: ShadowGate | None = Field(None, description="compare the shadow's predictions with the "
                                                             "champion's; data collection is turned on")


class RolloutPlan(_Strict):
    workspace: str
    endpoint: str
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    mirror: MirrorPhase | None = None
    steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100], min_length=1, max_length=100)
    bake_seconds: Seconds = 60
    gates: HealthGates = Field(default_factory=HealthGates)
    failure_limit: int = Field(1, ge=1, le=MAX_FAILURES, description="failed analyses before rolling back")
    inconclusive_limit: int = Field(10, ge=1, le=MAX_INCONCLUSIVE,
                                    description="inconclusive analyses of one step before `on_no_evidence`")
    on_no_evidence: Literal["hold", "roll_back"] = Field(
        "hold", description="after inconclusive_limit analyses: hold the step (ops told once) or roll back")
    compare: Comparison | None = Field(None, description="judge the canary against its champion too")
    manual_gates: list[int] = Field(default_factory=list, max_length=100,
                                    description="steps that wait for approval first")
    retire_previous_after_seconds: Seconds = 300

    _workspace = field_validator("workspace")(lambda cls, value: _location(value))

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError("steps must be increasing percentages in (0, 100] that end at 100")
        return steps

    @model_validator(mode="after")
    def _manual_gates_are_steps(self) -> RolloutPlan:
        unknown = set(self.manual_gates) - set(self.steps)
        if unknown:
            raise ValueError(f"manual_gates {sorted(unknown)} are not steps of the plan")
        return self


class DriftRule(_Strict):
    """What drift starts retraining: a v1 dataset monitor over a threshold, or a v2 model monitor's breach.

    v2 signals are matched by name: Azure ML's docs name them `<monitor>_<signal>` so that Event Grid
    can filter per monitor (MicrosoftDocs/azure-ai-docs, articles/machine-learning/
    how-to-monitor-model-performance.md), so `model_monitor: credit_risk` with `signals: [data_drift]`
    matches the signal `credit_risk_data_drift`, and without `signals` every `credit_risk_*` signal.
    """

    monitor: str | None = Field(None, description="v1: fnmatch pattern on the dataset drift monitor's name")
    threshold: float | None = Field(None, ge=0, le=MAX_DRIFT, allow_inf_nan=False,
                                    description="v1: drift coefficient that starts retraining")
    model_monitor: str | None = Field(None, description="v2: fnmatch pattern on the model monitor's name")
    signals: list[str] | None = Field(None, min_length=1, description="v2: signal names (without the monitor's)")
    pipeline: str
    inputs: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_way_to_match(self) -> DriftRule:
        if self.monitor is None and self.model_monitor is None:
            raise ValueError("drift needs monitor (a v1 dataset monitor) or model_monitor (a v2 model monitor)")
        if self.monitor is not None and self.threshold is None:
            raise ValueError("threshold is required with monitor (v1 dataset drift)")
        if self.threshold is not None and self.monitor is None:
            raise ValueError("threshold applies to monitor (v1 dataset drift) only; model monitors have their own")
        if self.signals is not None and self.model_monitor is None:
            raise ValueError("signals are signals of a model_monitor, which is missing")
        return self

    def watches_signal(self, signal: str) -> bool:
        """Whether a breached v2 signal (`<monitor>_<signal>`) is one this rule acts on."""
        if self.model_monitor is None:
            return False
        patterns = [f"{self.model_monitor}_{name}" for name in self.signals or ["*"]]
        return any(fnmatch.fnmatchcase(signal, pattern) for pattern in patterns)


class Rule(_Strict):
    name: str
    models: ModelSelector
    source_workspace: str = "dev"
    test: TestPlan
    gates: list[Gate] = Field(default_factory=list)
    promotion: Promotion | None = None
    review: Review | None = None
    rollout: RolloutPlan | None = None
    drift: DriftRule | None = None
    notify: dict[str, list[Channel]] = Field(
        default_factory=dict, description="notification kind (or 'default') -> channels"
    )

    _source = field_validator("source_workspace")(lambda cls, value: _location(value))

    @field_validator("name")
    @classmethod
    def _rule_name(cls, value: str) -> str:
        if not LOGICAL_NAME.match(value):
            raise ValueError(f"rule name {value!r} must match {LOGICAL_NAME.pattern}")
        return value

    def channels_for(self, kind: str) -> list[str] | None:
        """The channels that hear about `kind`; None means every configured channel."""
        channels = self.notify.get(kind, self.notify.get("default"))
        return list(channels) if channels is not None else None


class Policy(_Strict):
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {duplicates}")
        return self

    def rule_for_model(self, model_name: str, tags: dict[str, str]) -> Rule | None:
        return next((rule for rule in self.rules if rule.models.matches(model_name, tags)), None)

    def rule_named(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def rule_for_monitor(self, monitor: str) -> Rule | None:
        """The rule watching a v1 dataset drift monitor."""
        return next(
            (r for r in self.rules if r.drift and r.drift.monitor and fnmatch.fnmatchcase(monitor, r.drift.monitor)),
            None,
        )

    def rule_for_signals(self, signals: list[str]) -> tuple[Rule, list[str]] | None:
        """The first rule watching any of these breached v2 signals, with the signals it watches."""
        for rule in self.rules:
            watched = [signal for signal in signals if rule.drift and rule.drift.watches_signal(signal)]
            if watched:
                return rule, watched
        return None


MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000
MAX_NUMBER_CHARS = 100


def parse_policy(text: str, source: str = "policy") -> Policy:
    """Validate policy YAML; raise PolicyError naming each rule and field at fault.

    The YAML is checked before it is built (`_check_yaml`): nesting, size with aliases
    expanded, and the length of numbers are bounded, so no text makes loading recurse,
    grow without end or fail other than with a PolicyError naming the place.
    """
    try:
        _check_yaml(text, source)
        document = yaml.safe_load(text)
    except PolicyError:
        raise
    except yaml.YAMLError as error:
        raise PolicyError(f"{source}: not valid YAML: {error}") from None
    except (ValueError, TypeError, OverflowError) as error:  # e.g. a timestamp `2026-13-45`
        raise PolicyError(f"{source}: a value cannot be read: {error}") from None
    try:
        return Policy.model_validate(document)
    except ValidationError as error:
        raise PolicyError(f"{source}: " + "; ".join(_where(document, item) for item in error.errors())) from None


def _check_yaml(text: str, source: str) -> None:
    """PolicyError, with line and column, for YAML nested deeper than MAX_YAML_DEPTH, of more than
    MAX_YAML_NODES nodes once aliases are expanded (a "billion laughs"), or with an integer longer
    than MAX_NUMBER_CHARS (Python refuses to read one of over 4,300 digits). Reads parser events
    only, which, unlike composing the document, does not recurse."""
    resolver = yaml.resolver.Resolver()
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, nodes so far) of each open collection
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        mark = event.start_mark  # the parser marks every event; the type allows none
        where = f"{source}: line {mark.line + 1}, column {mark.column + 1}" if mark else source
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append((event.anchor, 1))
            if len(open_nodes) > MAX_YAML_DEPTH:
                raise PolicyError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_nodes.pop()
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise PolicyError(f"{where}: alias *{event.anchor} refers to a node that contains it")
            anchor, size = None, sizes[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
            if event.implicit[0] and len(event.value) > MAX_NUMBER_CHARS:
                tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
                if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
                    raise PolicyError(f"{where}: a number of {len(event.value)} characters; at most {MAX_NUMBER_CHARS}")
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if open_nodes:
            parent_anchor, parent_size = open_nodes[-1]
            open_nodes[-1] = (parent_anchor, parent_size + size)
        else:
            total += size
        if total + sum(count for _, count in open_nodes) > MAX_YAML_NODES:
            raise PolicyError(f"{where}: more than {MAX_YAML_NODES} values (aliases counted where they are used)")


def _where(document: object, item: ErrorDetails) -> str:
    """`rules[1] (credit-risk).gates[0].min: message` from a pydantic error location."""
    parts: list[str] = []
    node = document
    for part in item["loc"]:
        if isinstance(part, int):
            name = node[part].get("name") if isinstance(node, list) and isinstance(node[part], dict) else None
            parts[-1] += f"[{part}]" + (f" ({name})" if name and len(parts) == 1 else "")
        else:
            parts.append(str(part))
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts) + f": {item['msg']}"


APP_ROOT = Path(__file__).resolve().parents[2]
"""The function app's folder, which a relative policy path is read from (as the Functions host deploys it)."""


@functools.cache
def load_policy(path: str) -> Policy:
    """The policy file at `path` (from the repository's root unless absolute), validated once per process."""
    file = Path(path)
    if not file.is_absolute():
        file = APP_ROOT / file
    try:
        text = file.read_text()
    except OSError as error:
        raise PolicyError(f"cannot read the policy file {file}: {error.strerror}") from None
    return parse_policy(text, str(path))
