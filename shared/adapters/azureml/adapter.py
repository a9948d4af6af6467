"""The ML platform port on Azure ML, through `azure-ai-ml` (written for azure-ai-ml 1.35.2).

Every call re-reads current state from Azure and every write is idempotent by name:
an existing job, registry version or deployment is found and returned, not made twice.
Long-running operations (deployments, traffic) are started and not awaited, with no
polling thread left behind (see started.py); their end is seen later through events or
the resync. Errors are the port's (see errors.py): nothing the SDK raises escapes as
anything else, and each names the operation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.adapters.azureml.clients import Clients, Cloud, registry_name
from shared.adapters.azureml.errors import translated
from shared.adapters.azureml.eventfilters import check_workspace
from shared.adapters.azureml.listing import created_at, newest_versions, recent, wanted
from shared.adapters.azureml.localservice import local_job_page
from shared.adapters.azureml.metrics import Rest, deployment_metrics, job_metrics, tracking_url
from shared.adapters.azureml.pipelines import pipeline_job
from shared.adapters.azureml.runlogs import failure
from shared.domain.ports import (
    SAFE_NAME,
    ConfigurationError,
    Deployment,
    DeploymentMetrics,
    DeploymentSpec,
    Endpoint,
    Job,
    JobStatus,
    ModelVersion,
    NotFound,
    PlatformError,
    TryLater,
)
from shared.settings import Settings

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from azure.core.credentials import TokenCredential

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,31}$")
PUBLIC_CLOUD = Cloud()


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.match(value):
        raise ValueError(f"{kind} {value!r} must match {pattern.pattern}")
    return value


class AzureMLPlatform:
    """`MLPlatform` on Azure ML workspaces and a registry."""

    def __init__(
        self, settings: Settings, *, credential: TokenCredential | None = None, cloud: Cloud = PUBLIC_CLOUD,
        pipelines: Path | None = None,
    ) -> None:
        self._clients = Clients(settings, credential=credential, cloud=cloud)
        self._rest = Rest(self._clients.arm_token, self._clients.identity)
        self._pipelines = pipelines
        self._tracking: dict[str, str] = {}
        self._local_pages = settings.azureml_endpoint  # the local Azure ML service's URL, when it stands in

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureMLPlatform:
        """The adapter for the app: Azure's cloud, or the local Azure ML service when the settings name it."""
        from shared.adapters.azureml.localservice import configured_cloud

        return cls(settings, cloud=configured_cloud(settings) or PUBLIC_CLOUD)

    def _translated(self, what: str, location: str) -> AbstractContextManager[None]:
        return translated(what, identity=self._clients.identity, scope=self._clients.scope(location))

    # -- models ---------------------------------------------------------------------------

    def get_model(self, location: str, name: str, version: str) -> ModelVersion:
        _check("model name", name, SAFE_NAME)
        _check("model version", version, SAFE_NAME)
        client = self._clients.ml(location)
        with self._translated(f"model {name}:{version} in {location}", location):
            if version == "latest":
                model = client.models.get(name, label="latest")
            else:
                model = client.models.get(name, version=version)
        return _model(location, model)

    def list_model_versions(
        self, location: str, since: datetime, limit: int, *, before: datetime | None = None,
        names: Sequence[str] = (),
    ) -> list[ModelVersion]:
        """The workspace's active versions created in [since, before], newest first across its models, at most
        `limit`: a listing of its models, then per model whose name matches `names` its newest versions a
        page at a time (`$orderBy=createdtime desc`, `$top`), read only down to `since` (see listing.py).

        A model deleted between the two listings is passed over. Workspaces only: a registry's versions are
        copies the app made, not versions to discover.
        """
        if registry_name(location) is not None:
            raise ConfigurationError(f"cannot list the versions of {location!r}: only a workspace's are listed")
        if limit < 1:
            return []
        client = self._clients.ml(location)
        workspace = self._clients.workspace(location)
        with self._translated(f"models in {location}", location):
            models = [model.name for model in client.models.list() if wanted(model.name, names)]
        found: list[ModelVersion] = []
        for name in models:
            try:
                with self._translated(f"versions of model {name} in {location}", location):
                    versions = newest_versions(client, workspace.resource_group, workspace.workspace_name, name,
                                               limit)
                    found += recent(versions, since, before, limit, lambda model: _model(
                        location, model).model_copy(update={"created_at": created_at(model)}))
            except NotFound:
                continue  # deleted since the models were listed
        found.sort(key=lambda model: model.created_at or since, reverse=True)
        return found[:limit]

    def set_model_tags(self, location: str, name: str, version: str, tags: dict[str, str]) -> None:
        """Merge `tags` into the model version's tags (the version is PUT again with them)."""
        _check("model name", name, SAFE_NAME)
        _check("model version", version, SAFE_NAME)
        client = self._clients.ml(location)
        with self._translated(f"model {name}:{version} in {location}", location):
            model = client.models.get(name, version=version)
            existing = dict(model.tags or {})
            if all(existing.get(key) == value for key, value in tags.items()):
                return
            model.tags = {**existing, **tags}
            client.models.create_or_update(model)

    def promote_model(
        self, model: ModelVersion, target: str, lineage: dict[str, str] | None = None
    ) -> ModelVersion:
        """Share a workspace model version to `registry:<name>` under the same name and version, then
        merge `lineage` into the copy's tags.

        The import (`models.share`) carries only a reference to the source, no tags, and a registry
        version's property dictionary cannot change once it exists: tags, set by a PUT of the registry
        version (`models.create_or_update` on the registry), are what Azure lets the copy carry besides
        what it copied (see localaml/registries.py for the sources). Repeating it changes nothing.
        """
        copied = self._share(model, target)
        if not lineage or all(copied.tags.get(key) == value for key, value in lineage.items()):
            return copied
        self.set_model_tags(target, copied.name, copied.version, lineage)
        return copied.model_copy(update={"tags": {**copied.tags, **lineage}})

    def _share(self, model: ModelVersion, target: str) -> ModelVersion:
        registry = registry_name(target)
        if registry is None or registry_name(model.location) is not None:
            raise ConfigurationError(
                f"cannot promote {model.name}:{model.version} from {model.location!r} to {target!r}: Azure ML "
                "promotes from a workspace to 'registry:<name>'; prod deployments then reference the registry"
            )
        try:
            return self.get_model(target, model.name, model.version)
        except NotFound:
            pass
        # A client of its own: the share switches its client's scope to the registry while it runs (clients.py).
        source = self._clients.dedicated(model.location)
        try:
            with self._translated(f"sharing {model.name}:{model.version} to {target}", target):
                source.models.share(
                    model.name, model.version, share_with_name=model.name, share_with_version=model.version,
                    registry_name=registry,
                )
        except PlatformError as error:
            # A concurrent promotion makes it "already exist" (azure-ai-ml refuses to import onto an existing
            # registry version): the registry is the judge of whether the version is there. The share's own
            # path ends on the import's Location with nothing, then reads the version (localaml/registries.py).
            try:
                return self.get_model(target, model.name, model.version)
            except NotFound:
                raise error from None
        return self.get_model(target, model.name, model.version)

    def download_model(self, model: ModelVersion, destination: Path) -> Path:
        """Download the version's files under `destination` (a fresh folder); the path of its one ONNX file."""
        _check("model name", model.name, SAFE_NAME)
        _check("model version", model.version, SAFE_NAME)
        client = self._clients.ml(model.location)
        try:
            with self._translated(f"downloading model {model.name}:{model.version}", model.location):
                client.models.download(model.name, model.version, download_path=str(destination))
        except ConfigurationError as error:
            if registry_name(model.location) is not None:
                raise
            # A workspace with identity-based storage access (`systemDatastoresAuthMode: identity`) hands out no
            # key: the files are read with the app's own token (azure-ai-ml `get_datastore_info`), which needs a
            # data role on the storage account (MicrosoftDocs/azure-ai-docs, how-to-disable-local-auth-storage.md).
            raise ConfigurationError(
                f"{error} (if the workspace uses identity-based storage access, the app needs Storage Blob Data "
                "Reader on the workspace's storage account)"
            ) from error
        found = sorted(destination.rglob("*.onnx"))
        if len(found) != 1:
            raise PlatformError(
                f"model {model.name}:{model.version} in {model.location} has {len(found)} .onnx files, expected one"
            )
        return found[0]

    # -- jobs -----------------------------------------------------------------------------

    def submit_job(
        self, workspace: str, job_name: str, pipeline: str, inputs: dict[str, str], tags: dict[str, str]
    ) -> Job:
        """Submit the repo's pipeline `pipeline` as `job_name`; an existing job of that name is returned."""
        _check("job name", job_name, JOB_NAME)
        try:
            return self.get_job(workspace, job_name)
        except NotFound:
            pass
        job = pipeline_job(pipeline, inputs, job_name=job_name, tags=tags, directory=self._pipelines)
        client = self._clients.ml(workspace)
        try:
            with self._translated(f"job {job_name} in {workspace}", workspace):
                created = client.jobs.create_or_update(job)
        except ConfigurationError:
            raise
        except PlatformError as error:
            # A concurrent submit of the same name won. Azure answers the losing PUT with 400 UserError
            # "A job with this name already exists" (inner code JobPropertyImmutable), not 409: whatever
            # the answer, a job of that name that exists now is the one to return.
            try:
                return self.get_job(workspace, job_name)
            except NotFound:
                raise error from None
        return _job(workspace, created)

    def get_job(self, workspace: str, job_name: str) -> Job:
        """Status, tags and, once completed, the metrics of the job and its steps."""
        _check("job name", job_name, JOB_NAME)
        client = self._clients.ml(workspace)
        with self._translated(f"job {job_name} in {workspace}", workspace):
            found = client.jobs.get(job_name)
        job = _job(workspace, found)
        if job.status is JobStatus.COMPLETED:
            base = self._tracking_url(workspace)
            job.metrics = job_metrics(self._rest, base, job_name, scope=self._clients.scope(workspace))
        elif job.status is JobStatus.FAILED:
            why = failure(self._rest, self._tracking_url(workspace), job_name, scope=self._clients.scope(workspace))
            job.error, job.log = why.error, why.log
        if self._local_pages:  # Azure ML studio cannot show the local service's jobs; the service's own page can
            job.studio_url = local_job_page(self._local_pages, self._clients.workspace(workspace).workspace_name,
                                            job_name)
        return job

    def cancel_job(self, workspace: str, job_name: str) -> None:
        """`POST .../jobs/<name>/cancel` through `jobs.begin_cancel`, started and not polled (`polling=False`: no
        polling thread left behind, as for the other operations the app starts, see started.py)."""
        _check("job name", job_name, JOB_NAME)
        client = self._clients.ml(workspace)
        with self._translated(f"job {job_name} in {workspace}", workspace):
            client.jobs.begin_cancel(job_name, polling=False)

    def invoke_batch_endpoint(self, workspace: str, endpoint: str, job_name: str, input_uri: str) -> Job:
        """Start a batch scoring job on `input_uri` (a folder if it ends in '/'); the Job returned has its real name.

        `job_name` is asked for, but the batch endpoint may ignore it and name the job itself
        (Azure/azure-sdk-for-python#32763): callers keep the returned name and must not rely on
        finding a started job again by `job_name` (see shared/scoring/jobs.py).
        """
        _check("batch endpoint name", endpoint, ENDPOINT_NAME)
        _check("job name", job_name, JOB_NAME)
        if not input_uri.startswith(("https://", "azureml://")):
            raise ValueError(f"batch input {input_uri!r} must be an https:// or azureml:// URI")
        try:
            return self.get_job(workspace, job_name)
        except NotFound:
            pass
        from azure.ai.ml import Input

        kind = "uri_folder" if input_uri.endswith("/") else "uri_file"
        client = self._clients.ml(workspace)
        with self._translated(f"batch endpoint {endpoint} in {workspace}", workspace):
            started = client.batch_endpoints.invoke(
                endpoint_name=endpoint, input=Input(type=kind, path=input_uri), job_name=job_name
            )
        status = JobStatus.parse(started.status or "queued")
        # The answer's id is a path ending in the job (Azure/azureml-examples cli/batch-score-rest.sh reads the
        # job from it); the name, when Azure gives one, is the same job.
        name = started.name or str(started.id or "").rstrip("/").rsplit("/", 1)[-1] or job_name
        return Job(workspace=workspace, name=name, status=status)

    def _tracking_url(self, workspace: str) -> str:
        if workspace not in self._tracking:
            client = self._clients.ml(workspace)
            with self._translated(f"workspace {workspace}", workspace):
                uri = client.workspaces.get(self._clients.workspace(workspace).workspace_name).mlflow_tracking_uri
            self._tracking[workspace] = tracking_url(uri)
        return self._tracking[workspace]

    # -- endpoints ------------------------------------------------------------------------

    def get_endpoint(self, workspace: str, endpoint: str) -> Endpoint:
        _check("endpoint name", endpoint, ENDPOINT_NAME)
        client = self._clients.ml(workspace)
        with self._translated(f"online endpoint {endpoint} in {workspace}", workspace):
            found = client.online_endpoints.get(endpoint)
            deployments = list(client.online_deployments.list(endpoint))
        return Endpoint(
            workspace=workspace,
            name=endpoint,
            provisioning_state=_state(found.provisioning_state),
            # The SDK lists deployments without traffic at 0; ARM keeps only non-zero weights.
            traffic=_nonzero(found.traffic or {}),
            mirror_traffic=_nonzero(found.mirror_traffic or {}),
            deployments=[
                Deployment(
                    name=item.name, model_uri=_model_reference(item.model),
                    provisioning_state=_state(item.provisioning_state),
                )
                for item in deployments
            ],
        )

    def create_deployment(
        self, workspace: str, endpoint: str, deployment: str, model: ModelVersion, spec: DeploymentSpec
    ) -> None:
        """Start creating a managed deployment of `model` (not awaited); an existing one is left alone."""
        _check("endpoint name", endpoint, ENDPOINT_NAME)
        _check("deployment name", deployment, ENDPOINT_NAME)
        if not model.uri:
            raise ValueError(f"model {model.name}:{model.version} has no uri to deploy")
        from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment

        client = self._clients.ml(workspace)
        what = f"deployment {deployment} of {endpoint} in {workspace}"
        try:
            with self._translated(what, workspace):
                client.online_deployments.get(deployment, endpoint)
            return
        except NotFound:
            pass
        with self._translated(what, workspace):
            client.online_deployments.begin_create_or_update(
                ManagedOnlineDeployment(
                    name=deployment, endpoint_name=endpoint, model=model.uri, environment=spec.environment,
                    code_configuration=(
                        CodeConfiguration(code=spec.code, scoring_script=spec.scoring_script) if spec.code else None
                    ),
                    instance_type=spec.instance_type, instance_count=spec.instance_count,
                    data_collector=_data_collector() if spec.collect_predictions else None,
                ),
                skip_script_validation=True,
            )

    def delete_deployment(self, workspace: str, endpoint: str, deployment: str) -> None:
        """Start deleting a deployment (not awaited); one already gone is fine."""
        _check("endpoint name", endpoint, ENDPOINT_NAME)
        _check("deployment name", deployment, ENDPOINT_NAME)
        client = self._clients.ml(workspace)
        try:
            with self._translated(f"deployment {deployment} of {endpoint} in {workspace}", workspace):
                client.online_deployments.begin_delete(deployment, endpoint)
        except NotFound:
            return

    def set_traffic(
        self, workspace: str, endpoint: str, traffic: dict[str, int], mirror_traffic: dict[str, int]
    ) -> None:
        """Start a traffic update (not awaited). TryLater while the endpoint is updating."""
        _check("endpoint name", endpoint, ENDPOINT_NAME)
        _check_traffic(traffic, mirror_traffic)
        client = self._clients.ml(workspace)
        with self._translated(f"traffic of online endpoint {endpoint} in {workspace}", workspace):
            found = client.online_endpoints.get(endpoint)
            state = _state(found.provisioning_state)
            if state.lower() in ("updating", "creating", "deleting"):
                raise TryLater(f"online endpoint {endpoint} in {workspace} is {state}; traffic changes wait for it")
            current = (_nonzero(found.traffic or {}), _nonzero(found.mirror_traffic or {}))
            if current == (_nonzero(traffic), _nonzero(mirror_traffic)):
                return
            # Zero weights left out, as the SDK's begin_create_or_update leaves them out.
            found.traffic = _nonzero(traffic)
            found.mirror_traffic = _nonzero(mirror_traffic)
            client.online_endpoints.begin_create_or_update(found)

    def event_filter_warnings(self) -> list[str]:
        """The self-check of the Event Grid filters of every watched workspace's run events (eventfilters.py)."""
        warnings = []
        for name in sorted(self._clients.settings.workspaces):
            scope = self._clients.workspace(name).resource_id
            what = f"the Event Grid subscriptions of workspace {name}"

            def read(url: str, what: str = what, scope: str = scope) -> dict[str, Any]:
                return self._rest.call("GET", url, what=what, scope=scope)

            warnings += check_workspace(read, self._clients.cloud.resource_manager, name, scope)
        return warnings

    def get_deployment_metrics(
        self, workspace: str, endpoint: str, deployment: str, since: datetime, until: datetime | None = None,
        metrics: Sequence[str] = (),
    ) -> DeploymentMetrics:
        _check("endpoint name", endpoint, ENDPOINT_NAME)
        _check("deployment name", deployment, ENDPOINT_NAME)
        resource_id = (
            f"{self._clients.workspace(workspace).resource_id}/onlineEndpoints/{endpoint}/deployments/{deployment}"
        )
        return deployment_metrics(
            self._rest, self._clients.cloud.resource_manager, resource_id, since, scope=self._clients.scope(workspace),
            now=until, metrics=metrics,
        )


def _data_collector() -> Any:
    """Azure ML's data collector for the scoring code's `model_inputs` and `model_outputs`, rolled hourly (docs
    "Collect production data from models deployed for real-time inferencing"; read by `collected.py`)."""
    from azure.ai.ml.entities import DataCollector, DeploymentCollection

    return DataCollector(collections={name: DeploymentCollection(enabled="true")
                                      for name in ("model_inputs", "model_outputs")}, rolling_rate="Hour")


def _check_traffic(traffic: dict[str, int], mirror_traffic: dict[str, int]) -> None:
    for kind, weights, limit in (("traffic", traffic, 100), ("mirror traffic", mirror_traffic, 50)):
        for name, weight in weights.items():
            _check(f"{kind} deployment", name, ENDPOINT_NAME)
            if not isinstance(weight, int) or not 0 <= weight <= limit:
                raise ValueError(f"{kind} for {name!r} must be an integer from 0 to {limit}, got {weight!r}")
    if traffic and sum(traffic.values()) not in (0, 100):
        raise ValueError(f"traffic must add up to 100 (or 0), got {sum(traffic.values())}: {traffic}")
    # Azure ML docs, "Safe rollout for online endpoints" (how-to-safely-rollout-online-endpoints), mirroring's
    # limitations: "You can mirror traffic to only one deployment in an endpoint" and "The maximum percentage
    # of traffic you can mirror is 50 percent": of the endpoint's traffic, not per deployment.
    mirrored = _nonzero(mirror_traffic)
    if len(mirrored) > 1:
        raise ValueError(f"mirror traffic can go to one deployment only, got {sorted(mirrored)}")
    if sum(mirrored.values()) > 50:
        raise ValueError(f"mirror traffic must add up to at most 50, got {sum(mirrored.values())}: {mirror_traffic}")
    both = set(mirrored) & {n for n, w in traffic.items() if w}
    if both:
        raise ValueError(f"a deployment cannot take live and mirror traffic at once: {sorted(both)}")


def _state(value: object) -> str:
    """A provisioning state as Azure spells it (the SDK gives a str or an enum of it)."""
    return str(getattr(value, "value", value) or "Succeeded")


def _nonzero(weights: dict[str, int]) -> dict[str, int]:
    return {name: weight for name, weight in weights.items() if weight}


def _model(location: str, model: Any) -> ModelVersion:
    registry = registry_name(location)
    uri = (
        f"azureml://registries/{registry}/models/{model.name}/versions/{model.version}"
        if registry
        else f"azureml:{model.name}:{model.version}"
    )
    tags = {str(key): str(value) for key, value in (model.tags or {}).items()}
    made = getattr(model, "creation_context", None)
    return ModelVersion(
        location=location, name=model.name, version=str(model.version), tags=tags, uri=uri,
        created_by=getattr(made, "created_by", None), modified_by=getattr(made, "last_modified_by", None),
        job_name=getattr(model, "job_name", None),
    )


def _job(workspace: str, job: Any) -> Job:
    return Job(
        workspace=workspace,
        name=job.name,
        status=JobStatus.parse(job.status or "NotStarted"),
        experiment=job.experiment_name or "",
        tags={str(key): str(value) for key, value in (job.tags or {}).items()},
        studio_url=job.studio_url,
    )


def _model_reference(model: Any) -> str:
    """A deployment's model as the URI it was created with (the SDK gives an ARM id or an entity)."""
    if model is None:
        return ""
    if isinstance(model, str):
        return model
    return str(getattr(model, "id", None) or f"azureml:{model.name}:{model.version}")
