"""Run the local Azure ML service with everything it needs, seeded as a team's Azure ML would be.

`running_local_azureml()` starts, on loopback: the service's own storage account (an
Azurite over TLS), the CONNECT proxy that leads storage host names to it, and the service
over HTTPS with its own CA. It then sets up what a platform team sets up once in Azure:
workspaces `dev` and `prod`, a registry, a compute cluster in each workspace, the repo's
environments and components (registered through azure-ai-ml by `tools.register_assets`,
as a user does), the test and training data, and the prod online endpoint.

`python -m localaml.run` runs it until Ctrl-C and prints the app settings that point the
app (under `func start` or the local host) at it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devhost.azurite import Azurite, running_azurite
from localaml.datastores import STORAGE_SUFFIX
from localaml.proxy import ProxyServer, running_proxy
from localaml.server import serving
from localaml.service import LocalAzureML
from localaml.tls import Certificates, make_certificates

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    from shared.platform.azureml.clients import Clients
    from shared.platform.port import ModelVersion

WORKSPACES = ("dev", "prod")
COMPUTE = "cpu-cluster"


@dataclass
class LocalAzureMLStack:
    service: LocalAzureML
    certificates: Certificates
    azurite: Azurite
    proxy: ProxyServer
    registry: str
    _clients: Clients | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.service.base_url

    def client_environ(self) -> dict[str, str]:
        """What any client process needs to reach the service: its CA and the storage proxy."""
        return {
            "REQUESTS_CA_BUNDLE": str(self.certificates.ca_file),
            "HTTPS_PROXY": self.proxy.url,
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def app_settings(self) -> dict[str, str]:
        """The app settings that point the app's azure-ai-ml adapter at the service."""
        workspaces = ",".join(f"{name}={LocalAzureML.workspace_id(name)}" for name in WORKSPACES)
        return {
            "MLOPS_WORKSPACES": workspaces,
            "MLOPS_REGISTRY": self.registry,
            "MLOPS_AZUREML_ENDPOINT": self.url,
            "MLOPS_AZUREML_STORAGE_SUFFIX": STORAGE_SUFFIX,
            "MLOPS_AZUREML_LOCAL_TOKEN": self.service.token_secret,
            **self.client_environ(),
        }

    def client(self, location: str) -> MLClient:
        """An azure-ai-ml client of a workspace (`dev`, `prod`) or `registry:<name>`, as the app makes them."""
        if self._clients is None:
            from shared.platform.azureml.clients import Clients
            from shared.platform.azureml.localservice import configured_cloud, configured_credential
            from shared.settings import Settings

            settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                              **self.app_settings()})
            cloud = configured_cloud(settings)
            assert cloud is not None
            self._clients = Clients(settings, credential=configured_credential(settings), cloud=cloud)
        return self._clients.ml(location)

    # -- what people do, through azure-ai-ml as they would -------------------------------------

    def register_model(
        self, workspace: str, name: str, onnx: bytes, tags: dict[str, str] | None = None
    ) -> ModelVersion:
        """Register the next version of a model from ONNX bytes, as a data scientist does with azure-ai-ml."""
        from azure.ai.ml.entities import Model

        from shared.platform.port import ModelVersion

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(onnx)
            model = Model(path=path, name=name, type="custom_model", tags=dict(tags or {}))
            with quiet_uploads():
                version = str(self.client(workspace).models.create_or_update(model).version)
        return ModelVersion(location=workspace, name=name, version=version, tags=dict(tags or {}),
                            uri=f"azureml:{name}:{version}")

    def control(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        """Call one of the service's local-only control routes (`/localaml/...`), with its token."""
        import requests

        from shared.platform.azureml.localservice import local_token

        token = local_token(self.service.token_secret, self.url.rstrip("/"))
        response = requests.request(method, self.url.rstrip("/") + path, json=body, timeout=60,
                                    headers={"Authorization": f"Bearer {token}"},
                                    verify=str(self.certificates.ca_file))
        response.raise_for_status()
        return response.json() if response.content else {}

    def run_model_monitor(self, workspace: str, monitor: str, signals: dict[str, list[dict[str, Any]]]) -> dict:
        """A v2 model monitor's scheduled run computes these signal metrics (see localaml/monitoring.py)."""
        return self.control("POST", f"/localaml/workspaces/{workspace}/monitors/{monitor}/runs", {"signals": signals})

    def set_deployment_fault(self, workspace: str, endpoint: str, deployment: str, error_rate: float) -> None:
        """Make a deployment fail this share (0 to 1) of its requests with HTTP 500 (local-only control)."""
        path = f"{self.service.workspace_id(workspace)}/onlineEndpoints/{endpoint}/deployments/{deployment}"
        self.control("POST", f"/localaml{path}/faults", {"errorRate": error_rate})

    def report_dataset_drift(self, workspace: str, monitor: str, coefficient: float) -> None:
        """A v1 dataset monitor's run finds drift: the workspace publishes DatasetDriftDetected (legacy path)."""
        from localaml import events

        self.service.events.publish(events.drift_detected(workspace, monitor, float(coefficient)))


def quiet_uploads() -> contextlib.AbstractContextManager[object]:
    """azure-ai-ml prints a terminal colour reset to stderr after every upload, whatever show_progress says."""
    return contextlib.redirect_stderr(io.StringIO())


@contextlib.contextmanager
def client_environment(values: dict[str, str]) -> Iterator[None]:
    """Set this process's CA bundle and proxy for the block (the SDK and storage clients read them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def running_local_azureml(
    workdir: Path, *, registry: str = "shared", events_urls: list[str] | None = None, port: int = 0,
    seed_workspaces: bool = True,
) -> Iterator[LocalAzureMLStack]:
    """Start the service and what it needs; seeded unless `seed_workspaces` is False."""
    workdir.mkdir(parents=True, exist_ok=True)
    certificates = make_certificates(workdir / "tls", names=(f"*.blob.{STORAGE_SUFFIX}",))
    with contextlib.ExitStack() as stack:
        azurite = stack.enter_context(
            running_azurite(location=str(workdir / "storage"), tls=(str(certificates.cert_file),
                                                                    str(certificates.key_file)))
        )
        proxy = stack.enter_context(running_proxy(azurite.blob_port))
        from azure.storage.blob import BlobServiceClient

        environ = {"REQUESTS_CA_BUNDLE": str(certificates.ca_file), "HTTPS_PROXY": proxy.url,
                   "NO_PROXY": "127.0.0.1,localhost"}
        stack.enter_context(client_environment(environ))
        storage = BlobServiceClient.from_connection_string(azurite.connection_string)
        service = LocalAzureML(token_secret=secrets.token_urlsafe(24), storage=storage)
        service.events.urls = list(events_urls or [])
        stack.enter_context(serving(service, certificates, port=port))
        stack.callback(service.close)
        local = LocalAzureMLStack(service, certificates, azurite, proxy, registry)
        if seed_workspaces:
            seed(local)
        yield local


def seed(local: LocalAzureMLStack) -> None:
    """What a platform team sets up once: workspaces, registry, clusters, assets, data, the prod endpoint."""
    service = local.service
    with service.lock:
        for name in WORKSPACES:
            service.add_workspace(name)
            service.add(
                f"{service.workspace_id(name)}/computes/{COMPUTE}",
                {"computeType": "AmlCompute", "computeLocation": "eastus", "provisioningState": "Succeeded",
                 "properties": {"vmSize": "STANDARD_DS3_V2", "scaleSettings": {"minNodeCount": 0,
                                                                               "maxNodeCount": 4}}},
                location="eastus",
            )
        service.add(service.registry_id(local.registry), {"discoveryUrl": service.base_url}, location="eastus")
    from localaml import samples
    from tools import register_assets

    with quiet_uploads():
        for name in WORKSPACES:
            register_assets.register(local.client(name))
    samples.seed_data(service, "dev")
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    prod = local.client("prod")
    prod.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="credit-risk", auth_mode="key"))
    deadline = time.monotonic() + 60
    while prod.online_endpoints.get("credit-risk").provisioning_state != "Succeeded":
        if time.monotonic() > deadline:
            raise RuntimeError("the prod endpoint credit-risk did not finish provisioning in 60 s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--workdir", type=Path, default=Path(".localaml"))
    parser.add_argument("--events-url", action="append", default=[],
                        help="an Event Grid subscriber URL (the app's webhook); repeat for several")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with running_local_azureml(args.workdir.resolve(), events_urls=args.events_url, port=args.port) as local:
        print(f"local Azure ML service on {local.url} (storage account {local.azurite.connection_string})")
        print("app settings (local.settings.json Values):")
        for name, value in local.app_settings().items():
            print(f'  "{name}": "{value}",')
        stop.wait()


if __name__ == "__main__":
    main()
