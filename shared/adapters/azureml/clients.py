"""Azure ML clients: one `MLClient` per location, made on first use and kept for the process.

A location is a logical workspace name from `MLOPS_WORKSPACES` or `registry:<name>`.
A registry client costs a discovery call when it is made, so clients are cached.

The cached clients are shared by the threads the Functions host runs invocations in, so no
call may go through them that changes them. `models.share` does: azure-ai-ml's
`ModelOperations._set_registry_client` points the client's one `OperationScope` (shared by all
its operation kinds: models, jobs, endpoints, computes ...) and its model service clients at the
registry's subscription and resource group while the share runs, and puts back afterwards what
it found, which a concurrent share may itself have changed (azure-ai-ml 1.35.2,
`operations/_model_operations.py`). Any call of another thread meanwhile goes to the wrong scope
(a workspace under the registry's resource group, a workspace model asked of the registry, a job's
compute looked up there), and two overlapping shares can leave the client in the registry's scope
for good. A share therefore gets a client of its own (`dedicated`), made for it and dropped:
making one costs about 9 ms of CPU (no request), against a share's several round trips, which a
lock around the cached client would make every other call of that workspace wait for.
`azure.ai.ml` and `azure.identity` are imported here only inside functions: importing
this module stays cheap for the function app's cold start.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.adapters.azureml.errors import translated
from shared.adapters.azureml.started import start_only
from shared.domain.names import WORKSPACE_ID
from shared.domain.ports import ConfigurationError, UnknownLocation
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import AccessToken, TokenCredential

REGISTRY_PREFIX = "registry:"
REGISTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,32}$")
USER_AGENT = "aml-reactor"
CONNECTION_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Cloud:
    """Which Azure to talk to: the public cloud by default, or a sovereign or test cloud by its metadata.

    `metadata` takes the keys `MLClient(cloud_metadata=...)` takes: `resource_manager`,
    `registry_discovery_endpoint`, `active_directory`, `aml_resource_id`, `azure_portal`,
    `storage_endpoint`.
    """

    name: str = "AzureCloud"
    resource_manager: str = "https://management.azure.com/"
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    # The audience of Resource Manager's tokens when it is not its endpoint (see `ResourceManagerAudience`).
    audience: str | None = None

    @classmethod
    def from_metadata(cls, name: str, metadata: Mapping[str, str], audience: str | None = None) -> Cloud:
        return cls(name, metadata["resource_manager"], dict(metadata), audience)

    @property
    def arm_scope(self) -> str:
        return self.resource_manager.rstrip("/") + "/.default"


@dataclass(frozen=True)
class Workspace:
    """A workspace named in the settings, with the parts of its ARM id."""

    name: str
    resource_id: str
    subscription_id: str
    resource_group: str
    workspace_name: str


def registry_name(location: str) -> str | None:
    """The registry's name for `registry:<name>`, None for a workspace name; validated."""
    if not location.startswith(REGISTRY_PREFIX):
        return None
    name = location.removeprefix(REGISTRY_PREFIX)
    if not REGISTRY_NAME.match(name):
        raise ValueError(f"location {location!r}: registry name must match {REGISTRY_NAME.pattern}")
    return name


class Clients:
    """The credential and the cached clients of one process."""

    def __init__(self, settings: Settings, *, credential: TokenCredential | None = None, cloud: Cloud = Cloud()):
        self.settings = settings
        self.cloud = cloud
        self._credential = credential
        self._scoped: TokenCredential | None = None
        self._clients: dict[str, MLClient] = {}
        self.connection_timeout, self.read_timeout = CONNECTION_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        """Who the app acts as, for error messages."""
        if self._credential is not None and not _is_azure_identity(self._credential):
            return f"the credential {type(self._credential).__name__}"
        if self.settings.azure_client_secret:
            return f"the service principal {self.settings.managed_identity_client_id} (a client secret)"
        if self.settings.managed_identity_client_id:
            return f"the managed identity with client id {self.settings.managed_identity_client_id}"
        return "DefaultAzureCredential (az login, environment or system-assigned managed identity)"

    @property
    def credential(self) -> TokenCredential:
        """The app's credential: a service principal's client secret when the settings give one (AZURE_CLIENT_SECRET
        with AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_AUTHORITY_HOST, as azure-identity's EnvironmentCredential reads
        them), else the managed identity; asking Resource Manager's audience where its endpoint is not it."""
        if self._credential is None:
            self._credential = default_credential(self.settings)
        if self.cloud.audience is None:
            return self._credential
        if self._scoped is None:
            self._scoped = ResourceManagerAudience(self._credential, self.cloud)
        return self._scoped

    def workspace(self, name: str) -> Workspace:
        """The workspace named `name` in MLOPS_WORKSPACES."""
        resource_id = self.settings.workspaces.get(name)
        if resource_id is None:
            known = ", ".join(sorted(self.settings.workspaces)) or "none"
            raise UnknownLocation(f"workspace {name!r} is not in MLOPS_WORKSPACES (configured: {known})")
        match = WORKSPACE_ID.match(resource_id)
        if match is None:  # settings validate this; kept for a Settings built by hand
            raise ConfigurationError(f"workspace {name!r}: {resource_id!r} is not a workspace resource id")
        return Workspace(name, resource_id, match["subscription"], match["resource_group"], match["name"])

    def scope(self, location: str) -> str:
        """The Azure scope a location's calls need roles on, for error messages."""
        registry = registry_name(location)
        if registry is not None:
            return f"the registry {registry}"
        return f"the workspace {self.workspace(location).resource_id}"

    def ml(self, location: str) -> MLClient:
        """The client for a workspace name or `registry:<name>`; made once per process."""
        with self._lock:
            if location not in self._clients:
                self._clients[location] = self._make(location)
            return self._clients[location]

    def dedicated(self, location: str) -> MLClient:
        """A new client for `location`, never cached: for one call that changes the client it runs on
        (`models.share`, see the module's docstring); no other thread ever sees it."""
        return self._make(location)

    def arm_token(self) -> str:
        """A bearer token for ARM, which MLflow tracking and Azure Monitor also accept."""
        with translated("Azure Resource Manager", identity=self.identity, scope=self.cloud.arm_scope):
            return self.credential.get_token(self.cloud.arm_scope).token

    def _make(self, location: str) -> MLClient:
        from azure.ai.ml import MLClient

        options: dict[str, Any] = {
            "cloud": self.cloud.name,
            "user_agent": USER_AGENT,
            "show_progress": False,
            "enable_telemetry": False,
            # No retries inside the SDK: 429/503 come back as TryLater with Retry-After (see errors.py).
            "retry_total": 0,
            # A call that hangs fails (Transient) instead of holding a function for azure-core's 300 s default.
            "connection_timeout": self.connection_timeout,
            "read_timeout": self.read_timeout,
        }
        if self.cloud.metadata is not None:
            options["cloud_metadata"] = dict(self.cloud.metadata)
        registry = registry_name(location)
        if registry is not None:
            with translated(f"registry {registry}", identity=self.identity, scope=self.scope(location)):
                return MLClient(self.credential, registry_name=registry, **options)
        workspace = self.workspace(location)
        client = MLClient(
            self.credential, workspace.subscription_id, workspace.resource_group, workspace.workspace_name, **options
        )
        return start_only(client)  # begin_* start operations and leave no polling thread (see started.py)


def _is_azure_identity(credential: object) -> bool:
    return type(credential).__module__.startswith("azure.identity")


def default_credential(settings: Settings) -> TokenCredential:
    """azure-identity's credential for the settings: ClientSecretCredential with a client secret, else the managed
    identity (user-assigned by AZURE_CLIENT_ID, else DefaultAzureCredential's chain)."""
    from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.managed_identity_client_id
    if settings.azure_client_secret:
        assert settings.azure_tenant_id and client_id, "settings validation requires them with a client secret"
        # An authority host other than Microsoft's is not one instance discovery knows: it is not asked.
        host = settings.azure_authority_host
        return ClientSecretCredential(settings.azure_tenant_id, client_id, settings.azure_client_secret,
                                      **({"authority": host, "disable_instance_discovery": True} if host else {}))
    return ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()


class ResourceManagerAudience:
    """A credential asking for Resource Manager's audience where azure-ai-ml asks for its endpoint.

    A cloud's Resource Manager endpoint and the audience of its tokens are two settings of its
    metadata (`resourceManager` and `authentication.audiences` of ARM's `/metadata/endpoints`);
    azure-ai-ml asks for `<resource_manager>/.default` (`_azure_environments._resource_to_scopes`),
    the same thing in Azure's clouds. Where the endpoint is not the audience (the local Azure ML
    service, whose URL is a loopback one), this asks Entra ID for `cloud.audience` instead.
    """

    def __init__(self, credential: TokenCredential, cloud: Cloud) -> None:
        self.credential = credential
        self.endpoint_scope = cloud.arm_scope
        self.audience_scope = (cloud.audience or cloud.resource_manager).rstrip("/") + "/.default"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        wanted = [self.audience_scope if scope == self.endpoint_scope else scope for scope in scopes]
        return self.credential.get_token(*wanted, **kwargs)
