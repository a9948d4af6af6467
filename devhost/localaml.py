"""Run the local Azure ML service with everything it needs, seeded as a team's Azure ML would be.

The harness side of the service (`localaml/`): the service itself knows nothing of the app,
while this module starts it for tests, the demo and `./dev host`, and builds the app's
azure-ai-ml clients (the app's settings and credential) that talk to it.

`running_local_azureml()` starts, on loopback: the local Entra ID stand-in (`localentra/`,
see devhost/entra.py) whose tokens the service takes, the service's own storage account (an
Azurite over TLS), the CONNECT proxy that leads storage host names to it, and the service
over HTTPS with its own CA (the stand-in serves with the same certificate). It then sets up
what a platform team sets up once in Azure: workspaces `dev` and `prod`, a registry, a
compute cluster in each workspace, the repo's environments and components (registered
through azure-ai-ml by `tools.register_assets`, as a user does), the test and training data,
and the prod online endpoint.

`python -m devhost.localaml` runs it until Ctrl-C and prints the app settings that point the
app (under `func start` or the local host) at it; with `--settings local.settings.json` it also
writes them into that file at each start (the app's client secret and the proxy's port are the
service's of this run), so `func start` needs no hand editing. Its resources are kept in
`<workdir>/state.json` between runs (`--fresh` forgets them).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devhost.azurite import Azurite, running_azurite
from devhost.entra import LocalEntraStack, running_local_entra
from devhost.waiting import wait_until
from localaml.credential import EntraTokens
from localaml.datastores import STORAGE_SUFFIX
from localaml.proxy import ProxyServer, running_proxy
from localaml.server import serving
from localaml.service import LocalAzureML, restore_state, state_text
from localaml.tls import Certificates, make_certificates
from shared.adapters.azureml.clients import Clients
from shared.adapters.azureml.localservice import configured_cloud
from shared.domain.ports import ModelVersion
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import AccessToken

WORKSPACES = ("dev", "prod")
COMPUTE = "cpu-cluster"


@dataclass
class LocalAzureMLStack:
    service: LocalAzureML
    certificates: Certificates
    azurite: Azurite
    proxy: ProxyServer
    registry: str
    entra: LocalEntraStack
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
        """The app settings that point the app's azure-ai-ml adapter at the service, and the app at the local Entra
        ID (who signs people in; the app's own identity, whose tokens the service takes)."""
        workspaces = ",".join(f"{name}={LocalAzureML.workspace_id(name)}" for name in WORKSPACES)
        return {
            "MLOPS_WORKSPACES": workspaces,
            "MLOPS_REGISTRY": self.registry,
            "MLOPS_AZUREML_ENDPOINT": self.url,
            "MLOPS_AZUREML_STORAGE_SUFFIX": STORAGE_SUFFIX,
            **self.entra.app_settings(),
            **self.client_environ(),
        }

    def clients(self) -> Clients:
        """The app's azure-ai-ml clients (its own identity), made once."""
        if self._clients is None:
            self._clients = clients_for(self.app_settings())
        return self._clients

    def client(self, location: str) -> MLClient:
        """An azure-ai-ml client of a workspace (`dev`, `prod`) or `registry:<name>`, as the app makes them."""
        return self.clients().ml(location)

    def client_as(self, location: str, upn: str) -> MLClient:
        """An azure-ai-ml client of a person signed in as `upn` (a user of the local Entra ID; the service records
        them in systemData): their tokens come from the stand-in, through the device code flow."""
        credential = PersonCredential(lambda scopes: self.entra.token_for(upn, scopes))
        return clients_for(self.app_settings(), credential).ml(location)

    # -- what people do, through azure-ai-ml as they would -------------------------------------

    def register_model(
        self, workspace: str, name: str, onnx: bytes, tags: dict[str, str] | None = None
    ) -> ModelVersion:
        """Register the next version of a model from ONNX bytes, as a data scientist does with azure-ai-ml."""
        return register_model_version(self.client(workspace), workspace, name, onnx, tags)

    def control(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        """Call one of the service's local-only control routes (`/localaml/...`), with the app's token."""
        import requests

        token = self.clients().arm_token()
        response = requests.request(method, self.url.rstrip("/") + path, json=body, timeout=60,
                                    headers={"Authorization": f"Bearer {token}"},
                                    verify=str(self.certificates.ca_file))
        response.raise_for_status()
        return response.json() if response.content else {}

    def run_model_monitor(self, workspace: str, monitor: str, signals: dict[str, list[dict[str, Any]]]) -> dict:
        """A v2 model monitor's scheduled run computes these signal metrics (see localaml/monitoring.py)."""
        return self.control("POST", f"/localaml/workspaces/{workspace}/monitors/{monitor}/runs", {"signals": signals})

    def set_deployment_fault(self, workspace: str, endpoint: str, deployment: str, error_rate: float = 0.0,
                             latency_ms: float = 0.0) -> None:
        """Make a deployment fail this share (0 to 1) of its requests with HTTP 500, and answer each
        `latency_ms` later than it would (local-only controls)."""
        path = f"{self.service.workspace_id(workspace)}/onlineEndpoints/{endpoint}/deployments/{deployment}"
        self.control("POST", f"/localaml{path}/faults", {"errorRate": error_rate, "latencyMs": latency_ms})

    def report_dataset_drift(self, workspace: str, monitor: str, coefficient: float) -> None:
        """A v1 dataset monitor's run finds drift: the workspace publishes DatasetDriftDetected (legacy path)."""
        from localaml import events

        self.service.events.publish(events.drift_detected(workspace, monitor, float(coefficient)))


class PersonCredential:
    """A TokenCredential of one person of the local Entra ID: their access token for the scopes asked, from
    `tokens(scopes)`."""

    def __init__(self, tokens: Callable[[list[str]], str]) -> None:
        self.tokens = tokens

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        import jwt
        from azure.core.credentials import AccessToken

        token = self.tokens(list(scopes))
        return AccessToken(token, int(jwt.decode(token, options={"verify_signature": False})["exp"]))


def person_clients(app_settings: dict[str, str], user: str) -> Clients:
    """azure-ai-ml clients of `user`, a person of the local Entra ID, signed in from another process than the
    stand-in's (`./dev register`): by the device code flow, their code entered on the page with their password."""
    from devhost.entra import device_code_sign_in, public_client
    from localentra.directory import Directory

    person = Directory().user(user)
    if person is None:
        raise ValueError(f"the local Entra ID has no user {user!r}")
    base, ca_file = app_settings["MLOPS_AUTH_AUTHORITY"], Path(app_settings["REQUESTS_CA_BUNDLE"])
    app = public_client(f"{base}/{app_settings['MLOPS_AUTH_TENANT_ID']}", ca_file)

    def tokens(scopes: list[str]) -> str:
        return str(device_code_sign_in(app, base, ca_file, person.upn, person.password, scopes)["access_token"])

    return clients_for(app_settings, PersonCredential(tokens))


def clients_for(app_settings: dict[str, str], credential: PersonCredential | None = None) -> Clients:
    """azure-ai-ml clients made from the app settings that point at the service (`app_settings()`): the app's own
    (its client secret), or a person's (`credential`)."""
    settings = Settings.from_environ({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **app_settings})
    cloud = configured_cloud(settings)
    if cloud is None:
        raise ValueError("MLOPS_AZUREML_ENDPOINT is not set: these are not the local service's settings")
    return Clients(settings, credential=credential, cloud=cloud)


def register_model_version(
    client: MLClient, workspace: str, name: str, onnx: bytes, tags: dict[str, str] | None = None
) -> ModelVersion:
    """Register the next version of a model from ONNX bytes with `client`, as a data scientist does."""
    from azure.ai.ml.entities import Model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(onnx)
        model = Model(path=path, name=name, type="custom_model", tags=dict(tags or {}))
        with quiet_uploads():
            version = str(client.models.create_or_update(model).version)
    return ModelVersion(location=workspace, name=name, version=version, tags=dict(tags or {}),
                        uri=f"azureml:{name}:{version}")


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
    seed_workspaces: bool = True, state_file: Path | None = None, entra_port: int = 0,
) -> Iterator[LocalAzureMLStack]:
    """Start the service and what it needs; seeded unless `seed_workspaces` is False.

    With `state_file`, the service's resources are loaded from it when it exists (instead of
    seeding: the seed is in it) and saved to it while the service runs and when it stops.
    Its storage account keeps its blobs in `workdir/storage` either way. The local Entra ID
    listens on `entra_port` (a free one by default), the service on `port`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    certificates = make_certificates(workdir / "tls", names=(f"*.blob.{STORAGE_SUFFIX}",))
    with contextlib.ExitStack() as stack:
        entra = stack.enter_context(running_local_entra(certificates, port=entra_port))
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
        service = LocalAzureML(token_secret=secrets.token_urlsafe(24), storage=storage,
                               entra=EntraTokens(entra.base_url, str(certificates.ca_file)))
        service.events.urls = list(events_urls or [])
        stack.enter_context(serving(service, certificates, port=port))
        stack.callback(service.close)
        local = LocalAzureMLStack(service, certificates, azurite, proxy, registry, entra)
        if state_file is not None and state_file.exists():
            try:
                restore_state(service, state_file.read_text())
            except (ValueError, KeyError, TypeError) as error:
                raise RuntimeError(f"{state_file} cannot be loaded ({error!r}): delete it to start the local "
                                   "Azure ML service afresh") from error
        elif seed_workspaces:
            seed(local)
        if state_file is not None:
            stack.enter_context(StateSaver(service, state_file))
        yield local


class StateSaver:
    """Saves the service's state to a file every `interval` seconds when it changed, and once more at the end.

    Each write goes to a temporary file in the same folder that then replaces the old one,
    so a crash mid-write leaves the previous state whole. The file is readable only by the
    user: it holds the service's token secret and endpoint keys.
    """

    def __init__(self, service: LocalAzureML, path: Path, interval: float = 1.0) -> None:
        self.service, self.path, self.interval = service, path, interval
        self._written = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localaml-state", daemon=True)

    def save(self) -> bool:
        """Write the state if it changed since the last write; whether it wrote."""
        text = state_text(self.service)
        if text == self._written:
            return False
        write_atomically(self.path, text)
        self._written = text
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.save()

    def __enter__(self) -> StateSaver:
        self.save()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.save()


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (0600), never leaving it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


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
    wait_until(lambda: prod.online_endpoints.get("credit-risk").provisioning_state == "Succeeded", timeout=60,
               what="the prod endpoint credit-risk to finish provisioning")


EXAMPLE_SETTINGS = Path(__file__).resolve().parents[1] / "local.settings.example.json"


def write_settings(path: Path, values: dict[str, str], example: Path = EXAMPLE_SETTINGS) -> Path:
    """Put `values` into the `Values` of Core Tools' `local.settings.json` at `path` (made from the repo's
    example when missing), keeping every other setting as it is; 0600, as it holds the app's secret."""
    document = json.loads((path if path.exists() else example).read_text())
    if not isinstance(document, dict) or not isinstance(document.get("Values", {}), dict):
        raise SystemExit(f"{path} is not a local.settings.json: no Values object")
    document.setdefault("Values", {}).update(values)
    write_atomically(path, json.dumps(document, indent=2) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--entra-port", type=int, default=8444, help="the local Entra ID's port")
    parser.add_argument("--workdir", type=Path, default=Path(".localaml"))
    parser.add_argument("--events-url", action="append", default=[],
                        help="an Event Grid subscriber URL (the app's webhook); repeat for several")
    parser.add_argument("--fresh", action="store_true", help="forget the resources kept in <workdir>/state.json")
    parser.add_argument("--settings", type=Path, metavar="LOCAL_SETTINGS_JSON",
                        help="write the app settings into this local.settings.json at each start (for func start)")
    args = parser.parse_args()
    state = args.workdir.resolve() / "state.json"
    if args.fresh:
        state.unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with running_local_azureml(args.workdir.resolve(), events_urls=args.events_url, port=args.port,
                               state_file=state, entra_port=args.entra_port) as local:
        print(f"local Azure ML service on {local.url} (storage account {local.azurite.connection_string})")
        print(f"local Entra ID on {local.entra.base_url} (tenant {local.entra.tenant})")
        print("app settings (local.settings.json Values):")
        for name, value in local.app_settings().items():
            print(f'  "{name}": "{value}",')
        if args.settings:
            print(f"written into {write_settings(args.settings, local.app_settings())}: func start reads them there")
        stop.wait()


if __name__ == "__main__":
    main()
