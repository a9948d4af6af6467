"""What a `scope` parameter asks for: one resource's scopes (or several, at /authorize) and OpenID Connect's.

Rules, as Entra applies them (learn.microsoft.com/entra/identity-platform/scopes-oidc and
permissions-consent-overview; the refusals as quoted in public issues):

- `openid`, `profile`, `email`, `offline_access` are OpenID Connect's; every other scope is
  `<resource identifier>/<name>`: an identifier URI or the resource's app id, then a scope
  name or `.default` (all the permissions granted on that resource). A scope without a
  resource is refused here with AADSTS70011 (real Entra reads it as a Microsoft Graph
  permission; Graph is not served here).
- A resource the tenant does not have: `invalid_resource` AADSTS500011.
- `.default` together with a named scope of the same resource: `invalid_scope` AADSTS70011
  ("static scope limit exceeded", dotnet/aspnetcore#60868).
- A token is for one resource: scopes of two at /token are `invalid_scope` AADSTS28000
  (AzureAD/microsoft-authentication-library-for-js#1487); /authorize may ask consent for
  several (v2-oauth2-auth-code-flow, "scope").
"""

from __future__ import annotations

from dataclasses import dataclass

from localentra.directory import OIDC_SCOPES, Directory, Resource
from localentra.errors import EntraError

FORMAT_HINT = (" The scope format is invalid. Scope must be in a valid URI form https://example/scope or a valid "
               "Guid<guid/scope>.")


@dataclass(frozen=True)
class ResourceScopes:
    resource: Resource
    requested_as: str  # the identifier the request named the resource by: a v1.0 token's `aud`
    names: tuple[str, ...]  # scope names on the resource as asked, `.default` included

    @property
    def is_default(self) -> bool:
        return ".default" in self.names

    @property
    def delegated(self) -> tuple[str, ...]:
        """The delegated scopes a user's token carries (`scp`): `.default` is all the resource exposes."""
        return self.resource.delegated_scopes if self.is_default else self.names

    def response_scope(self) -> str:
        """The token response's `scope`: the granted scopes, named by the identifier asked for."""
        return " ".join(f"{self.requested_as}/{name}" for name in self.delegated)

    def text(self) -> str:
        return " ".join(f"{self.requested_as}/{name}" for name in self.names)


@dataclass(frozen=True)
class ScopeRequest:
    resources: tuple[ResourceScopes, ...]
    oidc: tuple[str, ...]

    @property
    def offline(self) -> bool:
        return "offline_access" in self.oidc

    @property
    def openid(self) -> bool:
        return "openid" in self.oidc

    def text(self) -> str:
        return " ".join([*(scopes.text() for scopes in self.resources), *self.oidc])


def parse(directory: Directory, scope: str, tenant: str) -> ScopeRequest:
    """The scopes of a `scope` parameter, grouped by resource; refusals as Entra's."""
    words = list(dict.fromkeys(scope.split()))
    oidc = tuple(word.lower() for word in words if word.lower() in OIDC_SCOPES)
    grouped: dict[str, tuple[str, list[str]]] = {}
    resources: dict[str, Resource] = {}
    for word in words:
        if word.lower() in OIDC_SCOPES:
            continue
        prefix, _, name = word.rpartition("/")
        if not prefix or not name:
            raise EntraError("invalid_scope", 70011, scope, FORMAT_HINT)
        resource = directory.resource(prefix)
        if resource is None:
            raise EntraError("invalid_resource", 500011, prefix, tenant)
        resources[resource.app_id] = resource
        grouped.setdefault(resource.app_id, (prefix, []))[1].append(name)
    found = []
    for app_id, (requested_as, names) in grouped.items():
        resource = resources[app_id]
        if ".default" in names and len(names) > 1:
            raise EntraError("invalid_scope", 70011, scope, " static scope limit exceeded.")
        unknown = [name for name in names if name != ".default" and name not in resource.delegated_scopes]
        if unknown:
            raise EntraError("invalid_scope", 70011, f"{requested_as}/{unknown[0]}", "")
        found.append(ResourceScopes(resource, requested_as, tuple(names)))
    return ScopeRequest(tuple(found), oidc)


def one_resource(request: ScopeRequest) -> ResourceScopes:
    """The single resource a token request is for: more than one, or none, is refused as Entra refuses."""
    if len(request.resources) > 1:
        raise EntraError("invalid_scope", 28000, request.text())
    if not request.resources:
        raise EntraError("invalid_scope", 70011, request.text() or "''", FORMAT_HINT)
    return request.resources[0]
