"""Where the sandbox keeps its state: JSON records and files in one blob container.

Records (models, jobs, endpoints, faults) are `BlobStateStore` records with ETags;
model files and datasets are plain blobs under `files/`; live endpoint metrics are
append blobs under `metrics/`. Locations are logical workspace names (`dev`, `prod`)
or `registry:<name>`, and every name that goes into a blob path is validated here.
"""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError

from shared.platform.port import SAFE_NAME, NotFound, PlatformError
from shared.settings import LOGICAL_NAME
from shared.storage.state import BlobStateStore, blob_path

REGISTRY_PREFIX = "registry:"


class Rejected(PlatformError, ValueError):
    """The platform refuses the request as invalid (HTTP 400 in Azure ML); retrying will not help."""


def check_name(kind: str, value: object) -> str:
    """`value` if it is a valid Azure ML asset name, else Rejected naming the kind."""
    if not isinstance(value, str) or not SAFE_NAME.match(value):
        raise Rejected(
            f"{kind} name {value!r} is not valid: use letters, digits, '_', '.' and '-' "
            "(at most 255, starting with a letter or digit)"
        )
    return value


def check_workspace(value: object) -> str:
    if not isinstance(value, str) or not LOGICAL_NAME.match(value):
        raise Rejected(f"workspace {value!r} is not a logical workspace name ({LOGICAL_NAME.pattern})")
    return value


def check_location(value: object) -> str:
    """A workspace name or `registry:<name>`."""
    if isinstance(value, str) and value.startswith(REGISTRY_PREFIX):
        check_name("registry", value.removeprefix(REGISTRY_PREFIX))
        return value
    return check_workspace(value)


def registry_of(location: str) -> str | None:
    """The registry name of a `registry:<name>` location, None for a workspace."""
    return location.removeprefix(REGISTRY_PREFIX) if location.startswith(REGISTRY_PREFIX) else None


def key(*parts: str) -> str:
    """A record key from validated names; '@' cannot occur in a name, so keys are unambiguous."""
    return "@".join(parts)


class SandboxStore(BlobStateStore):
    """The sandbox's blob container: records, plus files and append-only lines."""

    def put_file(self, *path: str, data: bytes) -> None:
        self.container.get_blob_client(blob_path("files", *path)).upload_blob(data, overwrite=True)

    def get_file(self, *path: str) -> bytes:
        name = blob_path("files", *path)
        try:
            return self.container.get_blob_client(name).download_blob().readall()
        except ResourceNotFoundError:
            raise NotFound(f"sandbox file {name} does not exist") from None

    def list_names(self, prefix: str) -> list[str]:
        return [item.name for item in self.container.list_blobs(name_starts_with=prefix)]

    def read_blob(self, name: str) -> bytes | None:
        try:
            return self.container.get_blob_client(name).download_blob().readall()
        except ResourceNotFoundError:
            return None
