"""The whole local stack in one context manager, for the demo and end-to-end tests:
Azurite (the app's storage), the local Functions host (its own process), the local Azure
ML service (`localaml`, which the app reaches only through its azure-ai-ml adapter), and
a webhook receiver standing in for ops' notification channels."""

from __future__ import annotations

import base64
import contextlib
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite, running_azurite
from devhost.keys import HostKeys
from devhost.localaml import LocalAzureMLStack, running_local_azureml
from devhost.process import HostProcess
from devhost.receiver import Receiver
from localaml import samples
from shared.adapters.azureml import AzureMLPlatform
from shared.adapters.storage.clients import blob_service
from shared.adapters.storage.state import BlobStateStore
from shared.bindings import WORK_QUEUE
from shared.settings import Settings

ADMIN_USER = "erin"  # the stand-in's MLOps.Admin: every route but review decisions


@dataclass
class Stack:
    azurite: Azurite
    host: HostProcess
    aml: LocalAzureMLStack
    platform: AzureMLPlatform  # the app's own adapter, for tests and the demo to look through
    receiver: Receiver
    settings: Settings
    state: BlobStateStore

    def admin(self, method: str, path: str, as_user: str | None = ADMIN_USER, **kwargs: Any) -> requests.Response:
        """Call the admin API as `as_user` (a person of the local Entra stand-in, with their access token);
        None sends no token."""
        token = {"Authorization": f"Bearer {self.token(as_user)}"} if as_user else {}
        headers = {**token, **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.host.url}/api/{path}", headers=headers, timeout=60, **kwargs)

    def token(self, user: str) -> str:
        """`user`'s access token for the app, from the local Entra stand-in (signed in by device code)."""
        return self.aml.entra.token_for(user)

    def machine(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call a machine's route (health, scoring) with the function key: no person."""
        headers = {"x-functions-key": self.host.keys.function, **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.host.url}/api/{path}", headers=headers, timeout=60, **kwargs)

    def health(self) -> requests.Response:
        """The health route, as a probe calls it."""
        return self.machine("GET", "ops/health")


def stack_settings(azurite: Azurite, keys: HostKeys, receiver_url: str, secret: str,
                   fast: bool = True) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "MLOPS_STATE_CONTAINER": f"state-{suffix}",
        "MLOPS_NOTIFY_WEBHOOK_URL": f"{receiver_url}/ops",
        "MLOPS_NOTIFY_WEBHOOK_SECRET": secret,
        "MLOPS_RESYNC_SCHEDULE": "*/5 * * * * *" if fast else "0 */5 * * * *",
        "MLOPS_ROLLOUT_SCHEDULE": "* * * * * *" if fast else "*/30 * * * * *",
    }
    if fast:
        settings["AzureFunctionsJobHost__extensions__queues__visibilityTimeout"] = "00:00:00.5"
        settings["AzureFunctionsJobHost__extensions__queues__maxPollingInterval"] = "00:00:00.5"
    return settings


def clear_work_queues(azurite: Azurite) -> None:
    """Empty the app's work queues, as a new storage account has them.

    Each stack has its own state container, but stacks that share an Azurite (one per test worker) share its
    queues: an event one stack acknowledged and did not work off before it stopped would be handled by the next
    stack's worker, against that stack's state. In Azure each app has its own account.
    """
    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    for name in (WORK_QUEUE, WORK_QUEUE + "-poison"):
        with contextlib.suppress(ResourceNotFoundError):
            queues.get_queue_client(name).clear_messages()


@contextlib.contextmanager
def local_stack(workdir: Path, extra_settings: dict[str, str] | None = None, fast: bool = True,
                azurite: Azurite | None = None, capture_events: bool = False, host_port: int = 0,
                azureml_port: int = 0, azureml_state: Path | None = None, entra_port: int = 0) -> Iterator[Stack]:
    """Start everything; the local Azure ML service is seeded with workspaces, data and the prod endpoint.

    With `azureml_state`, the local Azure ML service keeps its resources in that file across runs.

    With `capture_events`, Azure ML's events go to the receiver (path `/aml-events`)
    instead of the app, for tests that deliver them in their own order.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with contextlib.ExitStack() as stack:
        if azurite is None:
            azurite = stack.enter_context(running_azurite(location=str(workdir / "azurite")))
        else:  # shared with the stacks before and after this one: each starts and leaves with empty queues
            clear_work_queues(azurite)
            stack.callback(clear_work_queues, azurite)
        receiver = stack.enter_context(Receiver(secret=secret))
        keys = HostKeys.load_or_create(workdir / "keys.json")
        host = HostProcess({}, workdir / "keys.json", port=host_port, log_file=workdir / "host.log")
        events_url = receiver.url + "/aml-events" if capture_events else (
            f"http://127.0.0.1:{host.port}/runtime/webhooks/eventgrid"
            f"?functionName=aml_events&code={keys.eventgrid_extension}"
        )
        aml = stack.enter_context(running_local_azureml(workdir / "localaml", events_urls=[events_url],
                                                        port=azureml_port, state_file=azureml_state,
                                                        entra_port=entra_port))
        # The control room is a single-page app of the app's registration: its URL is a redirect URI.
        aml.entra.entra.add_spa_redirect_uri(f"{host.url}/api/ops/controlroom")
        values = {**stack_settings(azurite, keys, receiver.url, secret, fast), **aml.app_settings(),
                  **(extra_settings or {})}
        # Model versions are immutable in Azure ML, so the disk cache keys on location/name/version;
        # every stack has its own Azure ML service, so it gets its own cache too.
        values.setdefault("MLOPS_SCORING_MODEL_CACHE", str(workdir / "model-cache"))
        host.settings = values
        settings = Settings.from_environ(values)
        stack.enter_context(host)
        state = BlobStateStore(blob_service(settings), settings.state_container)
        yield Stack(azurite, host, aml, AzureMLPlatform.from_settings(settings), receiver, settings, state)


class TrafficGenerator:
    """Client traffic to an online endpoint of the local Azure ML service: a bounded number of
    requests per second, from a background thread, until stopped. Like a client application it
    finds the scoring URI and key through azure-ai-ml. Counts answers by deployment."""

    def __init__(self, aml: LocalAzureMLStack, workspace: str, endpoint: str, per_second: float = 40) -> None:
        client = aml.client(workspace)
        self.url = client.online_endpoints.get(endpoint).scoring_uri
        self.key = client.online_endpoints.get_keys(endpoint).primary_key
        self.interval = 1 / per_second
        self.answers: dict[str, int] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._rows = samples.make_data(rows=64, seed=99)[0].tolist()

    def __enter__(self) -> TrafficGenerator:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key}"
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            try:
                response = session.post(self.url, json={"inputs": [self._rows[n % len(self._rows)]]}, timeout=5)
            except requests.RequestException:
                self.errors += 1
                continue
            if response.ok:
                deployment = response.headers.get("azureml-model-deployment", "?")
                self.answers[deployment] = self.answers.get(deployment, 0) + 1
            else:
                self.errors += 1


