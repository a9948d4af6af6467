"""SandboxPlatform: the MLPlatform port with real local work, plus the sandbox's own controls.

Port methods behave as the Azure ML adapter does (same errors, same idempotency,
long-running operations started and not awaited). The sandbox-only methods stand in for
what people and Azure ML itself do: register models, create endpoints and datasets,
detect drift, and break things on purpose.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.platform.port import (
    ConfigurationError,
    DeploymentMetrics,
    DeploymentSpec,
    Endpoint,
    Job,
    ModelVersion,
    NotFound,
)
from shared.platform.sandbox import datasets, endpoints, events, faults, jobs, metrics, models, scoring
from shared.platform.sandbox.faults import faultable
from shared.platform.sandbox.routing import Router
from shared.platform.sandbox.store import SandboxStore, check_name, check_workspace
from shared.settings import Settings
from shared.storage.clients import blob_service


class SandboxPlatform:
    """The ML platform on Azurite and ONNX Runtime. Timings are in seconds."""

    def __init__(
        self,
        store: SandboxStore,
        publisher: events.EventPublisher,
        runner_environ: dict[str, str] | None = None,
        deployment_seconds: float = 0.5,
        update_seconds: float = 0.5,
        route_cache_seconds: float = 0.25,
        job_timeout_seconds: float = 600,
        seed: int | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.runner_environ = runner_environ
        self.deployment_seconds = deployment_seconds
        self.update_seconds = update_seconds
        self.job_timeout_seconds = job_timeout_seconds
        self.recorder = metrics.MetricsRecorder(store)
        self.router = Router(store, self.recorder, route_cache_seconds, random.Random(seed))
        self._runners: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> SandboxPlatform:
        store = SandboxStore(blob_service(settings), settings.sandbox_container)
        publisher = events.EventPublisher(settings.sandbox_events_url)
        return cls(store, publisher, runner_environ=runner_environ(settings), **options)

    # Models ------------------------------------------------------------------------

    @faultable
    def get_model(self, location: str, name: str, version: str) -> ModelVersion:
        return models.get(self.store, location, name, version)

    @faultable
    def set_model_tags(self, location: str, name: str, version: str, tags: dict[str, str]) -> None:
        models.set_tags(self.store, location, name, version, tags)

    @faultable
    def promote_model(self, model: ModelVersion, target: str) -> ModelVersion:
        return models.promote(self.store, model, target)

    @faultable
    def download_model(self, model: ModelVersion, destination: Path) -> Path:
        data = models.read_bytes(self.store, model.location, model.name, model.version)
        path = Path(destination) / model.name / model.version / models.FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def register_model(self, workspace: str, name: str, onnx_bytes: bytes, tags: dict[str, str]) -> ModelVersion:
        """Register the next version of a model and publish ModelRegistered (sandbox only)."""
        model = models.register(self.store, check_workspace(workspace), name, onnx_bytes, tags)
        self.publisher.publish(events.model_registered(workspace, model.name, model.version, model.tags))
        return model

    # Jobs --------------------------------------------------------------------------

    @faultable
    def submit_job(
        self, workspace: str, job_name: str, pipeline: str, inputs: dict[str, str], tags: dict[str, str]
    ) -> Job:
        doc, created = jobs.submit(self.store, workspace, job_name, pipeline, inputs, tags)
        if created:
            if self.runner_environ is None:
                raise ConfigurationError("this SandboxPlatform was built without settings; use from_settings")
            with self._lock:
                self._runners.append(jobs.spawn(self.store, doc, self.runner_environ, self.job_timeout_seconds))
        return jobs.view(doc, self.job_timeout_seconds)

    @faultable
    def get_job(self, workspace: str, job_name: str) -> Job:
        return jobs.view(jobs.load(self.store, workspace, job_name), self.job_timeout_seconds)

    def create_dataset(self, name: str, features: Any, labels: Any) -> None:
        """Store a labelled dataset for jobs (sandbox only): rows of features and a 0/1 label per row."""
        datasets.create(self.store, name, features, labels)

    def join_jobs(self, timeout: float = 60) -> None:
        """Wait for the job runners this object started; kill any still running after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            runners, self._runners = self._runners, []
        for runner in runners:
            try:
                runner.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()

    def stop_jobs(self, timeout: float = 30) -> None:
        """Test teardown: wait for every running job of this sandbox, whichever process started
        it, then kill the runners still going (their jobs end failed)."""
        deadline = time.monotonic() + timeout
        while (left := jobs.running(self.store)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for doc in left:
            jobs.stop(self.store, doc, f"stopped by the sandbox's teardown after {timeout:.0f} s")

    # Endpoints ---------------------------------------------------------------------

    def create_endpoint(self, workspace: str, name: str) -> None:
        """Create an online endpoint with no deployments (sandbox only); idempotent."""
        endpoints.create(self.store, workspace, name)

    @faultable
    def get_endpoint(self, workspace: str, endpoint: str) -> Endpoint:
        return endpoints.view(endpoints.load(self.store, workspace, endpoint), time.time())

    @faultable
    def create_deployment(
        self, workspace: str, endpoint: str, deployment: str, model: ModelVersion, spec: DeploymentSpec
    ) -> None:
        if check_name("deployment", deployment) in endpoints.load(self.store, workspace, endpoint)["deployments"]:
            return
        record = models.describe(self.store, model.location, model.name, model.version)
        outcome, error = "Succeeded", None
        try:
            scoring.new_session(models.read_bytes(self.store, model.location, model.name, model.version))
        except Exception as failure:  # what a deployment whose model cannot load ends as in Azure ML
            outcome, error = "Failed", f"the model does not load: {failure}"
        endpoints.add_deployment(
            self.store, workspace, endpoint, deployment, models.from_record(record), record["sha256"],
            outcome, error, self.deployment_seconds, spec.instance_type,
        )
        self.router.forget(workspace, endpoint)

    @faultable
    def delete_deployment(self, workspace: str, endpoint: str, deployment: str) -> None:
        endpoints.remove_deployment(self.store, workspace, endpoint, deployment)
        self.router.forget(workspace, endpoint)

    @faultable
    def set_traffic(
        self, workspace: str, endpoint: str, traffic: dict[str, int], mirror_traffic: dict[str, int]
    ) -> None:
        endpoints.set_traffic(self.store, workspace, endpoint, traffic, mirror_traffic, self.update_seconds)
        self.router.forget(workspace, endpoint)

    @faultable
    def get_deployment_metrics(
        self, workspace: str, endpoint: str, deployment: str, since: datetime
    ) -> DeploymentMetrics:
        endpoints.record_key(workspace, endpoint)
        self.recorder.flush()
        return metrics.read(self.store, workspace, endpoint, check_name("deployment", deployment), since)

    @faultable
    def invoke_batch_endpoint(self, workspace: str, endpoint: str, job_name: str, input_uri: str) -> Job:
        raise NotFound(
            f"batch endpoint {endpoint!r}: batch endpoints are not supported in the sandbox; "
            "score files with the app's own batch scoring instead"
        )

    def set_deployment_fault(self, workspace: str, endpoint: str, deployment: str, error_rate: float) -> None:
        """Make a deployment fail this share (0 to 1) of its requests with HTTP 500 (sandbox only)."""
        endpoints.set_fault(self.store, workspace, endpoint, deployment, error_rate)
        self.router.forget(workspace, endpoint)

    # Scoring -----------------------------------------------------------------------

    def score(
        self, workspace: str, endpoint: str, rows: object, deployment: str | None = None
    ) -> tuple[str, dict[str, list[Any]]]:
        """Score rows as the endpoint would: (deployment that answered, its outputs).

        Without `deployment`, requests follow the live traffic split and a share is
        copied to the mirror deployment, whose answer is only measured. Raises NotFound,
        Rejected (bad input), Transient (nothing to route to) or ScoringFailed (HTTP 500).
        """
        return self.router.score(workspace, endpoint, rows, deployment)

    def flush_metrics(self) -> None:
        self.recorder.flush()

    # Events and faults ---------------------------------------------------------------

    def publish_drift(self, workspace: str, monitor_name: str, coefficient: float) -> None:
        """Publish DatasetDriftDetected as a drift monitor would (sandbox only)."""
        check_name("drift monitor", monitor_name)
        self.publisher.publish(events.drift_detected(check_workspace(workspace), monitor_name, float(coefficient)))

    def inject_platform_fault(self, method_name: str, error: str = "503", times: int = 1) -> None:
        """Make the next `times` calls of a port method fail: `503`/`timeout` Transient, `429` TryLater."""
        faults.inject(self.store, method_name, error, times)

    def clear_platform_faults(self) -> None:
        faults.clear(self.store)

    def close(self) -> None:
        """Tear down: let jobs finish (or stop them), write pending metrics."""
        self.join_jobs()
        self.stop_jobs()
        self.recorder.close()


def runner_environ(settings: Settings) -> dict[str, str]:
    """The environment of a job runner: this process's, with the app settings of `settings`."""
    names = set(Settings.names())
    environ = {name: value for name, value in os.environ.items() if name not in names}
    for alias, value in settings.model_dump(by_alias=True, exclude_none=True).items():
        environ[alias] = ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return environ
