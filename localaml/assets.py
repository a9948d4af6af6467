"""Versioned assets other than models: code and environment versions, and the containers of all of them.

Azure ML keeps a container per asset name with `latestVersion` and `nextVersion`, which
azure-ai-ml reads to number a version it creates without one (`_get_next_version_from_container`,
`_get_next_latest_versions_from_container` in `azure/ai/ml/_utils/_asset_utils.py`); the
container is made by the first version's PUT, and listing an asset type without a name lists
the containers (SDK e2e tests `test_model.py::test_list_no_name`, `test_environment.py::
test_environment_list`).

What an existing version refuses, as the SDK's own e2e tests expect of Azure:

- a code version keeps its `codeUri`: the same name and version with other content is refused with
  the SDK's `ASSET_PATH_ERROR` (`code_asset/e2etests/test_code.py::test_asset_path_update`), as for
  models; the SDK finds a code version by its content hash first (`GET .../codes/<name>/versions?
  hash=<sha256>&hashVersion=<v>`, generated client `CodeVersionsOperations.list`), so the same
  content again is no change;
- an environment version keeps its image, conda file and build context: another one is refused with
  409 (azure-ai-ml `_try_update_latest_version` takes that `ResourceExistsError` as "create the next
  version"; azure-sdk-for-python#38590 "Env dedup": an image change gives version 2, a description
  change updates version 1), in the words of Azure/azure-cli-extensions#5440 ("(UserError)
  Environment test_env with version 6 is already registered and cannot be changed.").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from localaml.errors import Reply, user_error
from localaml.service import Hooks

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

# What may change on an existing version (azure-ai-ml ASSET_PATH_ERROR: "Only tags, description, and isArchived
# can be updated"); an environment's own `properties` bag too (the SDK writes its upload hash there).
MUTABLE = ("tags", "description", "isArchived", "properties", "stage", "provisioningState")
ENVIRONMENT_DEFINITION = ("image", "condaFile", "build", "osType", "inferenceConfig")
VERSION_PATH = re.compile(r"^(?P<container>.+/(?P<kind>codes|environments|data|components)/(?P<name>[^/]+))"
                          r"/versions/(?P<version>[^/]+)$", re.IGNORECASE)


def install(service: LocalAzureML) -> None:
    for scope in ("workspaces", "registries"):
        service.on(f"{scope}/codes/versions", Hooks(put=put_code))
        service.on(f"{scope}/environments/versions", Hooks(put=put_environment))
        service.on(f"{scope}/data/versions", Hooks(put=put_other))


def count_version(service: LocalAzureML, path: str) -> None:
    """Make or update the container of the version at `path`: its latest and next version numbers.

    `nextVersion` is one past the highest numeric version (a version named otherwise, such as the SDK
    tests' `foo`, is latest but numbers nothing), "1" while there is none.
    """
    container_path, version = path.rsplit("/versions/", 1)
    container = service.resources.get(container_path.lower())
    if container is None:
        container = service.resource(
            container_path, {"properties": {"description": "", "tags": {}, "properties": {}, "isArchived": False}}
        )
        service.resources[container_path.lower()] = container
    numbers = [int(version)] if version.isdigit() else []
    following = container["properties"].get("nextVersion")
    if isinstance(following, str) and following.isdigit():
        numbers.append(int(following) - 1)
    container["properties"]["latestVersion"] = version
    container["properties"]["nextVersion"] = str(max(numbers) + 1) if numbers else "1"


def _kept(resource: dict[str, Any], existing: dict[str, Any]) -> None:
    """The existing version with only what may change taken from the request."""
    properties = resource["properties"]
    kept = dict(existing["properties"])
    kept.update({key: properties[key] for key in MUTABLE if properties.get(key) is not None})
    resource["properties"] = kept


def put_code(service: LocalAzureML, path: str, resource: dict[str, Any], existing: dict[str, Any] | None) -> None:
    from localaml.models import ASSET_PATH_ERROR

    properties = resource["properties"]
    if existing is not None:
        uri = str(properties.get("codeUri") or "")
        # ARM paths are case-insensitive; a blob URL's container and path are compared as given.
        if uri and uri.rstrip("/").lower() != str(existing["properties"].get("codeUri", "")).rstrip("/").lower():
            raise user_error(ASSET_PATH_ERROR.removeprefix("(UserError) "), "ImmutableAssetPath")
        _kept(resource, existing)
        return None
    if not properties.get("codeUri"):
        raise user_error("The code version must have a codeUri.", "RequiredField", target="codeUri")
    _defaults(properties)
    count_version(service, path)
    return None


def put_environment(
    service: LocalAzureML, path: str, resource: dict[str, Any], existing: dict[str, Any] | None
) -> Reply | None:
    properties = resource["properties"]
    build = properties.get("build")
    if isinstance(build, dict):
        # REST spec BuildContext.dockerfilePath: "Path to the Dockerfile in the build context", default "Dockerfile".
        build.setdefault("dockerfilePath", "Dockerfile")
    if existing is not None:
        changed = [key for key in ENVIRONMENT_DEFINITION
                   if key in properties and properties.get(key) != existing["properties"].get(key)]
        if changed:
            match = VERSION_PATH.match(path)
            name, version = (match["name"], match["version"]) if match else (path, "")
            raise user_error(f"Environment {name} with version {version} is already registered and cannot be "
                             "changed.", "EnvironmentVersionImmutable", status=409, target=changed[0])
        _kept(resource, existing)
        return None
    if not properties.get("image") and not properties.get("build"):
        raise user_error("An environment version needs an image or a build context.", "RequiredField",
                         target="image")
    properties.setdefault("osType", "Linux")
    properties.setdefault("environmentType", "UserCreated")
    _defaults(properties)
    count_version(service, path)
    return None


def put_other(service: LocalAzureML, path: str, resource: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Data versions: numbered in their container like the others."""
    if existing is None:
        _defaults(resource["properties"])
        count_version(service, path)


def _defaults(properties: dict[str, Any]) -> None:
    properties.setdefault("isAnonymous", False)
    properties.setdefault("isArchived", False)
    properties.setdefault("tags", {})
    properties.setdefault("properties", {})
