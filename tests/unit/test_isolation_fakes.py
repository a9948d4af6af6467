"""Small in-memory fakes of the state store, the ML platform, the notifier and the clock, enough for the
lifecycle controller, the rollout engine and the resync to run in unit tests (no tests here).

The fake state store keeps JSON documents as Blob Storage does; the app's typed stores run on it
unchanged (`Stores(FakeState())`), so what they write and read back is what they would store."""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.adapters.storage.stores import Stores
from shared.bootstrap import Services
from shared.domain.decisions import deployment_name
from shared.domain.notification import Notification
from shared.domain.policy import parse_policy
from shared.domain.ports import (
    Busy,
    Deployment,
    DeploymentMetrics,
    DeploymentSpec,
    Endpoint,
    Job,
    JobStatus,
    ModelVersion,
    NotFound,
)
from shared.domain.records import AuditEntry, Lifecycle
from shared.settings import Settings

POLICY = """
rules:
  - name: churn
    models: {name: "churn*"}
    test: {pipeline: model-test}
    promotion: {path: ["registry:shared"]}
    rollout:
      workspace: prod
      endpoint: churn
      steps: [50, 100]
      bake_seconds: 0
      gates: {min_requests: 1}
      retire_previous_after_seconds: 0
"""


START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """The time the app reads through `Services.clock`: it stands still until a test moves it on."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move on by a `timedelta`'s worth (`advance(seconds=61)`, `advance(days=7)`); the new time."""
        self.now += timedelta(**delta)
        return self.now


@dataclass
class FakeState:
    """Records by kind and key, listed in blob-name order as Blob Storage lists them."""

    records: dict[tuple[str, str], dict] = field(default_factory=dict)
    leased: set[tuple[str, str]] = field(default_factory=set)
    entries: list[AuditEntry] = field(default_factory=list)
    leasing: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def get(self, kind: str, key: str) -> dict | None:
        return copy.deepcopy(self.records.get((kind, key)))

    def put(self, kind: str, key: str, doc: dict) -> None:
        self.records[(kind, key)] = json.loads(json.dumps(doc))  # what Blob Storage keeps: JSON

    def create(self, kind: str, key: str, doc: dict) -> bool:
        if (kind, key) in self.records:
            return False
        self.put(kind, key, doc)
        return True

    def update(self, kind: str, key: str, change: Callable[[dict | None], dict]) -> dict:
        updated = change(self.get(kind, key))
        self.put(kind, key, updated)
        return updated

    def delete(self, kind: str, key: str) -> None:
        self.records.pop((kind, key), None)

    def items(self, kind: str, prefix: str = "") -> list[tuple[str, dict]]:
        keys = sorted(key for k, key in self.records if k == kind and key.startswith(prefix))
        return [(key, copy.deepcopy(self.records[(kind, key)])) for key in keys]

    @contextlib.contextmanager
    def lease(self, kind: str, key: str, seconds: int = 60, wait_seconds: float = 0) -> Iterator[None]:
        deadline = time.monotonic() + wait_seconds
        while True:  # taken at once or not at all, as Blob Storage grants a lease: threads may race for it
            with self.leasing:
                if (kind, key) not in self.leased:
                    self.leased.add((kind, key))
                    break
            if time.monotonic() >= deadline:
                raise Busy(f"{kind}/{key} is leased by another writer")
            time.sleep(0.05)
        try:
            yield
        finally:
            self.leased.discard((kind, key))

    def audit(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    def read_audit(self, days: list[str] | None = None) -> list[AuditEntry]:
        return list(self.entries)


@dataclass
class FakePlatform:
    """Deployments provision at once, traffic changes take at once, every deployment is healthy."""

    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    tags: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    job_errors: dict[str, Exception] = field(default_factory=dict)
    copies: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    registrants: dict[tuple[str, str], str] = field(default_factory=dict)
    studio_tags: dict[tuple[str, str], tuple[str, dict[str, str]]] = field(default_factory=dict)
    measured: list[datetime] = field(default_factory=list)
    registered: dict[tuple[str, str, str], ModelVersion] = field(default_factory=dict)
    """Versions `register` made, by workspace, name and version: what `list_model_versions` lists."""
    hidden: set[tuple[str, str]] = field(default_factory=set)
    """Versions announced but not shown yet (eventual consistency): `get_model` says NotFound."""
    listings: list[tuple[str, datetime, datetime | None, int]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    """Jobs that run until canceled (the others complete at once)."""
    canceled: list[str] = field(default_factory=list)

    def get_model(self, location: str, name: str, version: str) -> ModelVersion:
        """As Azure ML shows a version: who registered it, the tags a person set in studio and who changed it last."""
        if (name, version) in self.hidden:
            raise NotFound(f"model {name}:{version} in {location} was not found (404)")
        editor, tags = self.studio_tags.get((name, version), (None, {}))
        registrant = self.registrants.get((name, version))
        return ModelVersion(location=location, name=name, version=version, uri=f"azureml:{name}:{version}",
                            tags=dict(tags), created_by=registrant, modified_by=editor or registrant)

    def register(self, name: str, version: str, created_at: datetime, tags: dict[str, str] | None = None,
                 workspace: str = "dev") -> ModelVersion:
        """A version registered in `workspace` at `created_at`, with no event delivered for it."""
        model = ModelVersion(location=workspace, name=name, version=version, uri=f"azureml:{name}:{version}",
                             tags=dict(tags or {}), created_at=created_at)
        self.registered[(workspace, name, version)] = model
        return model

    def list_model_versions(self, location: str, since: datetime, limit: int, *, before: datetime | None = None,
                            names: Sequence[str] = ()) -> list[ModelVersion]:
        """As the adapter lists them: created in [since, before], newest first, at most `limit`."""
        self.listings.append((location, since, before, limit))
        found = [model for (workspace, name, _), model in self.registered.items()
                 if workspace == location and (name, model.version) not in self.hidden
                 and (not names or any(fnmatch.fnmatchcase(name, pattern) for pattern in names))
                 and model.created_at is not None and since <= model.created_at
                 and (before is None or model.created_at <= before)]
        found.sort(key=lambda model: model.created_at or since, reverse=True)
        return [model.model_copy(deep=True) for model in found[:limit]]

    def tag_in_studio(self, name: str, version: str, by: str, tags: dict[str, str]) -> None:
        """`by` sets tags on the version in Azure ML studio, and so becomes the one who changed it last."""
        _, current = self.studio_tags.get((name, version), (None, {}))
        self.studio_tags[(name, version)] = (by, {**current, **tags})

    def set_model_tags(self, location: str, name: str, version: str, tags: dict[str, str]) -> None:
        """A workspace version's tags in `tags`; a registry copy's in `copies`."""
        if location.startswith("registry:"):
            self.copies.setdefault((location, name, version), {}).update(tags)
        else:
            self.tags.setdefault((name, version), {}).update(tags)

    def submit_job(self, workspace: str, job_name: str, pipeline: str, inputs: dict, tags: dict) -> Job:
        return self.get_job(workspace, job_name)

    def get_job(self, workspace: str, job_name: str) -> Job:
        if job_name in self.job_errors:
            raise self.job_errors[job_name]
        if job_name in self.canceled:
            return Job(workspace=workspace, name=job_name, status=JobStatus.CANCELED)
        if job_name in self.running:
            return Job(workspace=workspace, name=job_name, status=JobStatus.RUNNING)
        return Job(workspace=workspace, name=job_name, status=JobStatus.COMPLETED, metrics={"accuracy": 0.9})

    def cancel_job(self, workspace: str, job_name: str) -> None:
        """A running job ends Canceled; one that has ended stays as it ended."""
        if job_name in self.running:
            self.running.discard(job_name)
            self.canceled.append(job_name)

    def promote_model(self, model: ModelVersion, target: str, lineage: dict[str, str] | None = None) -> ModelVersion:
        """The copy carries the source's tags and the lineage (kept in `copies` by target, name and version)."""
        tags = {**model.tags, **(lineage or {})}
        self.copies[(target, model.name, model.version)] = tags
        return model.model_copy(update={"location": target, "tags": tags})

    def get_endpoint(self, workspace: str, endpoint: str) -> Endpoint:
        return self.endpoints.setdefault((workspace, endpoint), Endpoint(workspace=workspace, name=endpoint))

    def create_deployment(self, workspace: str, endpoint: str, deployment: str, model: ModelVersion,
                          spec: DeploymentSpec) -> None:
        self.created.append(deployment)
        found = self.get_endpoint(workspace, endpoint)
        found.deployments.append(Deployment(name=deployment, model_uri=model.uri))

    def delete_deployment(self, workspace: str, endpoint: str, deployment: str) -> None:
        found = self.get_endpoint(workspace, endpoint)
        if all(d.name != deployment for d in found.deployments):
            raise NotFound(deployment)
        found.deployments = [d for d in found.deployments if d.name != deployment]

    def set_traffic(self, workspace: str, endpoint: str, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        found = self.get_endpoint(workspace, endpoint)
        found.traffic, found.mirror_traffic = dict(traffic), dict(mirror)

    def get_deployment_metrics(self, workspace: str, endpoint: str, deployment: str, since: datetime,
                               until: datetime | None = None, metrics: Sequence[str] = ()) -> DeploymentMetrics:
        self.measured.append(since)
        return DeploymentMetrics(requests=100, errors=0, latency_p95_ms=10, latency_p99_ms=20)

    def serving(self, workspace: str = "prod", endpoint: str = "churn") -> dict[str, int]:
        return {name: share for name, share in self.get_endpoint(workspace, endpoint).traffic.items() if share}

    def add_serving(self, model: str, version: str, workspace: str = "prod", endpoint: str = "churn") -> str:
        """A deployment that serves all the endpoint's traffic, as an earlier rollout left it."""
        name = deployment_name(model, version)
        found = self.get_endpoint(workspace, endpoint)
        found.deployments.append(Deployment(name=name, model_uri=f"azureml:{model}:{version}"))
        found.traffic = {name: 100}
        return name


@dataclass
class FakeNotifier:
    sent: dict[str, Notification] = field(default_factory=dict)

    def notify(self, notification: Notification, channels: list[str] | None = None) -> None:
        """One send per decision id, as the real notifier's delivery records make it."""
        self.sent.setdefault(notification.id, notification)


def fake_services(policy: str = POLICY, workspaces: dict[str, str] | None = None) -> Services:
    """Services on fakes; `workspaces` (logical name -> ARM id) are the settings' MLOPS_WORKSPACES, none unless
    given (then the resync's discovery lists the ones the policy's rules watch)."""
    environ = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    if workspaces:
        environ["MLOPS_WORKSPACES"] = ",".join(f"{name}={resource_id}" for name, resource_id in workspaces.items())
    settings = Settings.from_environ(environ)
    return Services(settings=settings, state=Stores(FakeState()), work_queue=None,  # type: ignore[arg-type]
                    clock=FakeClock(), _platform=FakePlatform(), _notifier=FakeNotifier(),  # type: ignore[arg-type]
                    _policy=parse_policy(policy))


def clock_of(services: Services) -> FakeClock:
    """The fake clock `fake_services` gave, to move on."""
    assert isinstance(services.clock, FakeClock)
    return services.clock


def fake_state(services: Services) -> FakeState:
    """The fake state store under the services' typed stores: its documents, leases and audit entries."""
    return services.state.blobs  # type: ignore[return-value]


def lifecycle_record(model: str, version: str, stage: str) -> Lifecycle:
    """A lifecycle as the controller leaves it in `stage` (promoted: the registry's copy serves)."""
    return Lifecycle.model_validate({
        "model": model, "version": version, "workspace": "dev", "uri": f"azureml:{model}:{version}",
        "rule": "churn", "stage": stage, "test_job": f"test-{model}-v{version}", "history": [],
        "serving_location": "registry:shared", "serving_uri": f"azureml://registries/shared/models/{model}/{version}",
    })
