"""The admin API's handlers: plain functions of `Services`, validated input and the caller.

Each one re-reads current state through the ports, acts through the same code the
events and timers use (the rollout engine, intake, the queue), and records who did
what in the audit trail under the request's correlation id.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from shared.adapters.storage.index import BadToken, Field
from shared.adapters.storage.stores import InvalidRecord, Listed, Store
from shared.bootstrap import Services
from shared.domain import lifecycle as machine
from shared.domain.decisions import retrain_job_name
from shared.domain.notification import Notification
from shared.domain.people import Person
from shared.domain.policy import PolicyError, Rule, parse_policy
from shared.domain.ports import Busy, NotFound, PlatformError
from shared.domain.records import AuditEntry, Stage
from shared.domain.records import Lifecycle as LifecycleRecord
from shared.domain.work import DeadLetter, SetAside, WorkItem
from shared.ops import traffic
from shared.ops.errors import ApiError
from shared.ops.models import (
    ActionPath,
    ActionRequest,
    AuditEntries,
    AuditFilter,
    ChampionHistory,
    ChampionPath,
    Check,
    EndpointPath,
    EndpointView,
    Health,
    HistoryPath,
    Lifecycle,
    LifecycleFilter,
    LifecyclePath,
    Lifecycles,
    ModelPath,
    Paged,
    PolicyDraft,
    PolicyValid,
    Promoted,
    PromoteRequest,
    Replayed,
    ReplayRequest,
    RetrainRequest,
    RetrainSubmitted,
    ReviewRequest,
    Rollout,
    RolloutFilter,
    Rollouts,
    SetAsideFilter,
    SetAsideItem,
    SetAsideItems,
    SetAsideKind,
    SignIn,
    StartRollout,
    TrafficApplied,
    TrafficChange,
)
from shared.reactor import intake, lifecycle, outcomes, setaside
from shared.reactor import rollout as engine
from shared.settings import Settings

MAX_AUDIT_DAYS = 366
REPLAYED = "replayed"
"""The kind of the marker a requeued dead letter leaves under its key: when, by whom, why it had failed."""
REPLAY_WAIT_SECONDS = 10.0  # a concurrent replay of the same dead letter waits this long for the first one


@dataclass(frozen=True)
class Caller:
    """Who asked, verified from their token (None on a route that needs no person), and the request's
    correlation id."""

    person: Person | None
    correlation_id: str

    @property
    def actor(self) -> str:
        """How a rollout's history names the caller."""
        return f"api:{self.person.display}" if self.person else "api:function-key"

    @property
    def name(self) -> str:
        return self.person.display if self.person else "function-key"


def health(services: Services, caller: Caller) -> Health:
    policy = _probe(lambda: f"{len(services.policy.rules)} rules from {services.settings.policy_path}")
    storage = _probe(lambda: _storage(services))
    return Health(ok=policy.ok and storage.ok, platform=_platform(services.settings), policy=policy, storage=storage)


def sign_in(services: Services, caller: Caller) -> SignIn:
    settings = services.settings
    if not (settings.auth_tenant_id and settings.auth_client_id):
        raise ApiError(503, "sign-in is not configured: set MLOPS_AUTH_TENANT_ID and MLOPS_AUTH_CLIENT_ID")
    return SignIn(authority=f"{settings.auth_authority}/{settings.auth_tenant_id}", tenant_id=settings.auth_tenant_id,
                  client_id=settings.auth_client_id, scope=f"{settings.auth_client_id}/.default",
                  opsctl_client_id=settings.auth_opsctl_client_id)


def _platform(settings: Settings) -> str:
    """Which Azure ML the app talks to: Azure's, or a local service in its place."""
    return f"azureml at {settings.azureml_endpoint}" if settings.azureml_endpoint else "azureml"


def promote(services: Services, where: ModelPath, request: PromoteRequest, caller: Caller) -> Promoted:
    """Copy a model version to each target in order (the rule's promotion path by default)."""
    model = services.platform.get_model(where.location, where.name, where.version)
    targets = request.targets or _promotion_path(services, model.name, model.tags)
    if model.location in targets:
        raise ApiError(400, f"the version is in {model.location} already; it cannot be promoted there", "targets")
    key = machine.key_of(model.name, model.version)
    record = services.state.lifecycles.get(key)
    untested = _untested(record)
    if untested and not request.force:
        raise ApiError(409, f"{key} {untested}; promote it anyway with force: true and a reason", "force")
    if request.force and not request.reason.strip():
        raise ApiError(400, "a forced promotion needs a reason, for the audit trail and ops", "reason")
    lineage = machine.lineage_by_hand(record, model, caller.name, request.reason if request.force else None)
    promoted = {target: services.platform.promote_model(model, target, lineage).uri for target in targets}
    where_to = f"from {model.location} to {', '.join(targets)}"
    if request.force:
        _audit(services, caller, key, "promote-forced", f"{where_to}; {untested or 'tested'}: {request.reason}")
        outcomes.notify(services, Notification(
            id=f"model.promoted:{key}:forced:{caller.correlation_id}"[:170], kind="model.promoted", severity="warning",
            title=f"{model.name} v{model.version} promoted by force", subject=key,
            summary=f"{caller.name} forced it ({untested or 'it had passed its tests'}): {request.reason}",
            facts=tuple(promoted.items()),
        ), None)
    else:
        _audit(services, caller, key, "promote", where_to)
    return Promoted(model=model.name, version=model.version, source=model.location, promoted=promoted)


_TESTED = (Stage.PASSED, Stage.PROMOTED, Stage.ROLLING_OUT, Stage.LIVE, Stage.ROLLED_BACK, Stage.SUPERSEDED,
           Stage.RETIRED)


def _untested(record: LifecycleRecord | None) -> str | None:
    """Why a version may not be promoted by hand, or None when it has passed its tests (and review)."""
    if record is None:
        return "was never tested (no lifecycle: no rule tests it, or it was never registered as one)"
    if record.stage not in _TESTED:
        return f"has not passed its tests and review (it is {record.stage.value})"
    return None


def review(services: Services, where: LifecyclePath, request: ReviewRequest, caller: Caller) -> Lifecycle:
    """Approve or reject a version that waits for review; it moves on at once."""
    assert caller.person is not None, "the route needs a person"
    record = lifecycle.review(services, machine.key_of(where.name, where.version), request.decision == "approve",
                              caller.person, request.reason, caller.correlation_id)
    return Lifecycle.model_validate(record.stored())


def change_traffic(services: Services, where: EndpointPath, change: TrafficChange, caller: Caller) -> TrafficApplied:
    """Set the endpoint's traffic under its lease; an active rollout is paused, not fought."""
    endpoint = services.platform.get_endpoint(where.workspace, where.endpoint)
    traffic.check(endpoint, change.traffic, change.mirror_traffic)
    record = engine.set_traffic(services, where.workspace, where.endpoint, dict(change.traffic),
                                dict(change.mirror_traffic), caller.actor)
    _audit(services, caller, f"{where.workspace}/{where.endpoint}", "traffic",
           f"traffic {change.traffic}, mirror {change.mirror_traffic}")
    return TrafficApplied(workspace=where.workspace, endpoint=where.endpoint, traffic=change.traffic,
                          mirror_traffic=change.mirror_traffic, rollout_state=record.state if record else None)


def start_rollout(services: Services, request: StartRollout, caller: Caller) -> Rollout:
    """Roll a model version out by the rule's plan (or the one given); the ticks do the rest."""
    rule = _rule(services, request.rule)
    plan = request.plan or rule.rollout
    if plan is None:
        raise ApiError(400, f"rule {rule.name!r} has no rollout plan; give one as plan", "plan")
    model = request.model
    if not model.location.startswith("registry:") and model.location != plan.workspace:
        # Azure resolves a deployment's model in the endpoint's own workspace or a registry, nowhere else.
        raise ApiError(400, f"a deployment in {plan.workspace} cannot use a model of {model.location}: promote the "
                            "version to a registry first and roll out the registry's copy", "model.location")
    record = engine.start(services, rule.name, plan, model.location, model.name, model.version,
                          cause=caller.correlation_id, restart=request.restart)
    _audit(services, caller, record.id, "rollout.start", f"{model.name} v{model.version} on {plan.endpoint}"
           + (" (restarted)" if request.restart else ""))
    return Rollout.model_validate(record.stored())


def rollout_action(services: Services, where: ActionPath, request: ActionRequest, caller: Caller) -> Rollout:
    """Pause, resume, approve, promote (one step; `full` to 100% with a reason), abort or undo."""
    if request.full and where.action != "promote":
        raise ApiError(400, f"full applies to promote only, not to {where.action}", "full")
    if request.full and not request.reason.strip():
        raise ApiError(400, "promote with full skips every analysis left: give a reason", "reason")
    record = engine.act(services, engine.key_for(where.workspace, where.endpoint), where.action, caller.actor,
                        request.reason, full=request.full)
    if record.state.has_ended:
        lifecycle.follow(services, record, caller.correlation_id)
    action = f"rollout.{where.action}" + ("-full" if request.full else "")
    _audit(services, caller, record.id, action, request.reason)
    return Rollout.model_validate(record.stored())


def list_rollouts(services: Services, query: RolloutFilter, caller: Caller) -> Rollouts:
    """A page of the endpoints' rollouts, by endpoint, each with its last history entry."""
    where = _where(state=query.state.value if query.state else None, endpoint=query.endpoint)
    records, following = _page(services, services.state.rollouts, where, query, caller)
    return Rollouts(items=[_as(Rollout, record.model_copy(update={"history": record.history[-1:]}))
                           for _, record in records], next=following)


M = typing.TypeVar("M", bound=BaseModel)


def _where(**fields: str | None) -> dict[str, Field]:
    """The index fields a listing filters on: the ones the query gives."""
    return {name: value for name, value in fields.items() if value is not None}


def _page(services: Services, store: Store[M], where: dict[str, Field], query: Paged, caller: Caller,
          prefix: str = "") -> tuple[list[tuple[str, M]], str | None]:
    """A page of the store's records with their keys (one index query) and the next page's token; a bad token
    is a 400 naming `next`, a record that is not valid is set aside and left out."""
    try:
        page = store.page(prefix, where, query.limit, query.next)
    except BadToken as error:
        raise ApiError(400, f"next: {error}", "next") from None
    return _loaded(services, store, page.items, caller), page.next


def _as(model: type[M], record: BaseModel) -> M:
    """The API's model of a record the store validated as it loaded it (a subclass of the record's: the same
    fields, and more with defaults), without validating it again: a page of 100 costs one validation each."""
    return model.model_construct(record.model_fields_set, **dict(record))  # dict(): fields and extras


def _loaded(services: Services, store: Store[M], items: list[Listed[M]], caller: Caller) -> list[tuple[str, M]]:
    records = []
    for listed in items:
        try:
            records.append((listed.key, listed.load()))
        except InvalidRecord as error:
            setaside.set_aside(services, store, error, caller.correlation_id)
    return records


def rollout_history(services: Services, where: HistoryPath, query: Paged, caller: Caller) -> Rollouts:
    """A page of the endpoint's finished rollouts, newest first, with their analyses and why they ended (one index
    query a page); a bad token is a 400 naming `next`, a record that is not valid is set aside and left out."""
    key = engine.key_for(where.workspace, where.endpoint)
    try:
        page = engine.history(services, key, query.limit, query.next)
    except BadToken as error:
        raise ApiError(400, f"next: {error}", "next") from None
    records = _loaded(services, services.state.archived_rollouts, page.items, caller)
    if not records and query.next is None and services.state.rollouts.get(key) is None:
        _known_endpoint(services, where)
    return Rollouts(items=[_as(Rollout, record) for _, record in records], next=page.next)


def _known_endpoint(services: Services, where: EndpointPath) -> None:
    """404 naming the endpoint when it has no rollout record and the platform does not know it either: an
    unknown name is a 404 on every route, not an empty answer. A platform that cannot answer for now lets the
    (empty) records answer."""
    try:
        services.platform.get_endpoint(where.workspace, where.endpoint)
    except NotFound:
        raise ApiError(404, f"no endpoint {where.endpoint!r} in {where.workspace} and no rollout was ever kept for "
                            "it", "endpoint") from None
    except PlatformError:
        return


def get_rollout(services: Services, where: EndpointPath, caller: Caller) -> Rollout:
    found = services.state.rollouts.get(engine.key_for(where.workspace, where.endpoint))
    if found is None:
        raise NotFound(f"no rollout on {where.workspace}/{where.endpoint}")
    record = found.stored()
    try:
        endpoint = services.platform.get_endpoint(where.workspace, where.endpoint)
    except PlatformError:
        return Rollout.model_validate(record)  # the record still answers when the platform cannot
    live = EndpointView(
        workspace=endpoint.workspace, name=endpoint.name, provisioning_state=endpoint.provisioning_state,
        traffic=endpoint.traffic, mirror_traffic=endpoint.mirror_traffic,
        deployments={d.name: d.provisioning_state for d in endpoint.deployments},
    )
    return Rollout.model_validate({**record, "live": live})


def retrain(services: Services, request: RetrainRequest, caller: Caller) -> RetrainSubmitted:
    """Submit the rule's drift pipeline; the job's name comes from request_id, so a repeat finds it."""
    rule = _rule(services, request.rule)
    if rule.drift is None:
        raise ApiError(400, f"rule {rule.name!r} has no drift pipeline to retrain with", "rule")
    workspace = rule.source_workspace
    if workspace.startswith("registry:"):
        raise ApiError(400, f"rule {rule.name!r} has a registry as its source; jobs run in a workspace", "rule")
    job_name = retrain_job_name(rule.name, request.request_id)
    tags = {"mlops.purpose": "retrain", "mlops.rule": rule.name, "mlops.request": request.request_id}
    job = services.platform.submit_job(workspace, job_name, rule.drift.pipeline, dict(rule.drift.inputs), tags)
    _audit(services, caller, rule.name, "retrain", f"job {job_name} ({rule.drift.pipeline}) in {workspace}")
    return RetrainSubmitted(rule=rule.name, workspace=workspace, job=job.name, status=job.status.value,
                            studio_url=job.studio_url)


def replay(services: Services, request: ReplayRequest, caller: Caller) -> Replayed:
    """Run a set-aside event through intake again, or put a dead-lettered work item back on
    the queue. A replay that got through removes the stored copy; a failing one is stored anew."""
    if request.kind == "deadletter":
        outcome, was = "requeued", _requeue(services, request.key, caller)
    else:
        store = services.state.set_aside[request.kind]
        kept = store.get(request.key)
        if kept is None:
            raise NotFound(f"no {request.kind} item with key {request.key!r}")
        outcome = intake.receive(kept.event, services.state, services.work_queue, clock=services.clock).value
        was = kept.reason
        if outcome == intake.Outcome.QUEUED.value:
            store.delete(request.key)
    _audit(services, caller, f"{request.kind}/{request.key}", "replay", f"was {request.kind}: {was}", outcome)
    return Replayed(kind=request.kind, key=request.key, outcome=outcome)


def _requeue(services: Services, key: str, caller: Caller) -> str:
    """Put a dead letter back on the queue once, however many replays of it run at the same time: under the
    dead letter's lease, it is taken off the store (a marker of the replay left in its place) before it is
    sent, and put back if the send fails. A concurrent replay waits for the lease, then finds the marker and
    answers 409 naming it. Returns why the work item had failed."""
    letters = services.state.dead_letters
    try:
        with letters.lease(key, wait_seconds=REPLAY_WAIT_SECONDS):
            letter = letters.get(key)
            if letter is None:
                raise _not_a_dead_letter(services, key)
            item = _work_item(letter.work_item(), key)
            services.state.blobs.put(REPLAYED, key, {
                "time": services.clock().isoformat(), "by": caller.name, "correlation_id": caller.correlation_id,
                "reason": letter.reason,
            })
            letters.delete(key)  # before the send: the item may fail again and be dead-lettered anew at once
            try:
                services.work_queue.send(item.message())
            except Exception:
                letters.put(key, letter)
                services.state.blobs.delete(REPLAYED, key)
                raise
            return letter.reason
    except Busy:
        raise ApiError(409, f"dead letter {key!r} is being replayed by another request; try again to see how it "
                            "ended", "key", headers={"Retry-After": "1"}) from None


def _not_a_dead_letter(services: Services, key: str) -> Exception:
    """Why there is no dead letter under `key`: 409 when a replay requeued it (and it has not failed again since),
    naming when and by whom; else 404."""
    replayed = services.state.blobs.get(REPLAYED, key)
    if replayed is None:
        return NotFound(f"no deadletter item with key {key!r}")
    return ApiError(409, f"dead letter {key!r} was already replayed at {replayed.get('time')} by "
                         f"{replayed.get('by')}: it is back on the queue (it is a dead letter again only if it "
                         "fails again)", "key")


def list_lifecycles(services: Services, query: LifecycleFilter, caller: Caller) -> Lifecycles:
    """A page of the lifecycles, by model and version, of a stage, model or rule when asked."""
    where = _where(stage=query.stage.value if query.stage else None, model=query.model, rule=query.rule)
    records, following = _page(services, services.state.lifecycles, where, query, caller)
    return Lifecycles(items=[_as(Lifecycle, record) for _, record in records], next=following)


def get_lifecycle(services: Services, where: LifecyclePath, caller: Caller) -> Lifecycle:
    record = services.state.lifecycles.get(machine.key_of(where.name, where.version))
    if record is None:
        raise NotFound(f"no lifecycle for {where.name} v{where.version}")
    return Lifecycle.model_validate(record.stored())


def champion_history(services: Services, where: ChampionPath, caller: Caller) -> ChampionHistory:
    """The rule's champion history; empty for a rule of the policy whose champion never changed."""
    stored = services.state.champion_histories.get(where.rule)
    if stored is not None:
        return ChampionHistory.model_validate(stored.model_dump())
    if services.policy.rule_named(where.rule) is None:
        raise ApiError(404, f"the policy has no rule named {where.rule!r} and no champion history is kept for it",
                       "rule")
    return ChampionHistory(rule=where.rule)


def audit_log(services: Services, query: AuditFilter, caller: Caller) -> AuditEntries:
    """The most recent `limit` entries that match, oldest first; `next` pages to the ones before them."""
    since = query.since.replace(tzinfo=query.since.tzinfo or UTC) if query.since else None
    if since and since.date() > services.clock().date():
        return AuditEntries(items=[])

    def match(entry: AuditEntry) -> bool:
        return (query.correlation_id in (None, entry.correlation_id) and query.subject in (None, entry.subject)
                and query.action in (None, entry.action))

    try:
        entries, following = services.state.audit_page(query.limit, match, since, query.next)
    except BadToken as error:
        raise ApiError(400, f"next: {error}", "next") from None
    return AuditEntries(items=entries, next=following)


def validate_policy(services: Services, draft: PolicyDraft, caller: Caller) -> PolicyValid:
    try:
        policy = parse_policy(draft.text, "policy")
    except PolicyError as error:
        raise ApiError(400, str(error), "body") from None
    return PolicyValid(valid=True, rules=[rule.name for rule in policy.rules])


def _rule(services: Services, name: str) -> Rule:
    rule = services.policy.rule_named(name)
    if rule is None:
        raise ApiError(404, f"the policy has no rule named {name!r}", "rule")
    return rule


def _promotion_path(services: Services, name: str, tags: dict[str, str]) -> list[str]:
    rule = services.policy.rule_for_model(name, tags)
    if rule is None or rule.promotion is None:
        raise ApiError(400, f"no rule with a promotion path matches model {name!r}; give targets", "targets")
    return list(rule.promotion.path)


def _work_item(item: WorkItem | None, key: str) -> WorkItem:
    if item is None:
        raise ApiError(409, f"dead letter {key!r} is not a readable work item; there is nothing to replay", "key")
    return item


def _storage(services: Services) -> str:
    services.state.blobs.container.get_container_properties()
    return f"state container {services.settings.state_container}"


def _probe(check: Callable[[], str]) -> Check:
    """A health check's outcome; the first line of an error is enough to say what is wrong."""
    try:
        return Check(ok=True, detail=check())
    except Exception as error:
        first_line = next(iter(str(error).splitlines()), "")
        return Check(ok=False, detail=f"{type(error).__name__}: {first_line}")


def _audit(services: Services, caller: Caller, subject: str, action: str, reason: str, outcome: str = "done") -> None:
    outcomes.audit(services, caller.correlation_id, subject, f"ops.{action}", outcome,
                   f"{reason} (by {caller.name})".strip(), by=caller.person)


def list_set_aside(services: Services, query: SetAsideFilter, caller: Caller) -> SetAsideItems:
    """A page of the events set aside by intake (rejected, ignored), dead-lettered work items and invalid records,
    newest first across the kinds (one index query), with the keys `replay` takes."""
    kinds: list[str] = [query.kind] if query.kind else list(typing.get_args(SetAsideKind))
    try:
        listed, following = services.state.set_aside_page(kinds, query.limit, query.next)
    except BadToken as error:
        raise ApiError(400, f"next: {error}", "next") from None
    items = []
    for kind, item in listed:
        store = services.state.dead_letters if kind == "deadletter" else (
            services.state.invalid if kind == "invalid" else services.state.set_aside[kind])
        for key, kept in _loaded(services, store, [item], caller):
            items.append(_set_aside_entry(typing.cast(SetAsideKind, kind), key, kept))
    return SetAsideItems(items=items, next=following)


def _set_aside_entry(kind: SetAsideKind, key: str, kept: BaseModel) -> SetAsideItem:
    """An item as listed: intake keeps the event itself, a dead letter the queue message, `invalid` the record's
    kind, key and field."""
    if isinstance(kept, DeadLetter):
        item = kept.work_item()
        return _set_aside_item(kind, key, kept.reason, kept.time, item.event if item else None)
    assert isinstance(kept, SetAside)
    return _set_aside_item(kind, key, kept.reason, kept.received, kept.event)


def _set_aside_item(kind: SetAsideKind, key: str, reason: str, when: datetime, event: object) -> SetAsideItem:
    fields = {str(name).lower(): value for name, value in event.items()} if isinstance(event, dict) else {}

    def text(*names: str) -> str:
        value = next((fields[name] for name in names if fields.get(name) is not None), "")
        return value[:300] if isinstance(value, str) else json.dumps(value, default=str)[:300]

    return SetAsideItem(kind=kind, key=key, reason=reason, time=when.isoformat(), event_id=text("id"),
                        event_type=text("eventtype", "type"), subject=text("subject"))
