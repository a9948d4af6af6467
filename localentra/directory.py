"""The stand-in's tenant: its users, its app registrations and the resources it issues tokens for.

One tenant, `TENANT`, the same the local Azure ML service names. Its people, each with a
fixed object id, a UPN `<name>@contoso.test` and a password that is this module's and
nobody's secret (`<name>-local-password`):

| user  | role in the team | app role on aml-reactor |
| ----- | ---------------- | ----------------------- |
| alice | data scientist   | MLOps.Reader            |
| bob   | approver         | MLOps.Approver          |
| carol | operator         | MLOps.Operator          |
| dave  | reader           | MLOps.Reader            |
| erin  | admin            | MLOps.Admin             |

App registrations (learn.microsoft.com/entra/identity-platform/reference-app-manifest):

- `aml-reactor` (API_CLIENT_ID): the API. Identifier URI `api://aml-reactor`, app roles
  MLOps.Reader/Operator/Approver/Admin, the delegated scope `user_impersonation`,
  `requestedAccessTokenVersion: 2` and the optional claim `upn` in access tokens. It is also
  the control room's single-page app: its `spa` redirect URIs are added when the host starts
  (`add_spa_redirect_uri`).
- `opsctl` (OPSCTL_CLIENT_ID): a public client ("Allow public client flows": device code)
  with the loopback redirect `http://localhost` for interactive sign-in (any port, as Entra
  allows for loopback redirects: learn.microsoft.com/entra/identity-platform/reply-url#localhost-exceptions).
- `aml-reactor-function-app` (APP_CLIENT_ID): the function app's own identity, standing in
  for its managed identity: a confidential client whose secret is made when the directory is.

Resources: the API (v2.0 tokens) and the Microsoft first-party resources the app calls
(`FIRST_PARTY`), which issue v1.0 tokens whatever endpoint asked for them, as Resource
Manager, Azure ML and Storage do (learn.microsoft.com/entra/identity-platform/access-tokens#token-formats).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TENANT = "22222222-2222-2222-2222-222222222222"
TENANT_DOMAIN = "contoso.test"
TENANT_NAME = "Contoso (local)"
API_CLIENT_ID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
OPSCTL_CLIENT_ID = "0d9e8f7a-6b5c-4d3e-9f2a-1b0c9d8e7f6a"
APP_CLIENT_ID = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
API_IDENTIFIER_URI = "api://aml-reactor"
API_SCOPE = f"{API_IDENTIFIER_URI}/user_impersonation"
APP_ROLES = ("MLOps.Reader", "MLOps.Operator", "MLOps.Approver", "MLOps.Admin")
FIRST_PARTY = ("https://management.azure.com", "https://ml.azure.com", "https://storage.azure.com")
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")


@dataclass(frozen=True)
class User:
    name: str
    oid: str
    display_name: str
    job: str
    roles: tuple[str, ...]  # app roles assigned on the API app

    @property
    def upn(self) -> str:
        return f"{self.name}@{TENANT_DOMAIN}"

    @property
    def password(self) -> str:
        return f"{self.name}-local-password"


USERS = (
    User("alice", "a11ce5d0-3c1e-4b8f-9e2a-7d4c1b0a9e01", "Alice Adams", "data scientist", ("MLOps.Reader",)),
    User("bob", "b0b0e7a2-5d3f-4c9a-8b1e-2f6a0c9d8e02", "Bob Baker", "approver", ("MLOps.Approver",)),
    User("carol", "ca401e3b-7f2d-4a6c-9d0e-5b8a1c2f3e03", "Carol Clark", "operator", ("MLOps.Operator",)),
    User("dave", "da7e0c4d-9a1b-4e3f-8c2d-6f0b3a5e4d04", "Dave Davis", "reader", ("MLOps.Reader",)),
    User("erin", "e4120f5e-2b8c-4d7a-9f1e-3a6c0d2b5f05", "Erin Evans", "admin", ("MLOps.Admin",)),
)


@dataclass
class Application:
    """An app registration and its service principal in the tenant."""

    client_id: str
    display_name: str
    principal_id: str  # the service principal's object id: `oid` of the app's own tokens
    public_client: bool = False  # "Allow public client flows" (device code); no secret
    secret: str | None = None
    spa_redirect_uris: set[str] = field(default_factory=set)
    public_redirect_uris: set[str] = field(default_factory=set)  # "Mobile and desktop applications"
    app_roles_held: dict[str, set[str]] = field(default_factory=dict)  # resource app id -> app roles granted

    @property
    def confidential(self) -> bool:
        return self.secret is not None

    def redirect_type(self, uri: str) -> str | None:
        """`spa`, `public` or None when `uri` is not registered for this app.

        A registered `http://localhost` matches any port (the loopback exception of
        learn.microsoft.com/entra/identity-platform/reply-url#localhost-exceptions); otherwise the match is exact.
        """
        if not uri.isprintable() or any(character.isspace() for character in uri):
            return None  # urlsplit drops tabs and line breaks: a URI with them is never the registered one
        if uri in self.spa_redirect_uris:
            return "spa"
        if uri in self.public_redirect_uris:
            return "public"
        try:
            parts = urlsplit(uri)
            parts.port  # noqa: B018 - raises ValueError on a port that is no number
        except ValueError:
            return None
        loopback = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")
        if loopback and not (parts.query or parts.fragment):
            without_port = f"http://{parts.hostname}{parts.path}".rstrip("/")
            if without_port in {registered.rstrip("/") for registered in self.public_redirect_uris}:
                return "public"
        return None

    def check_secret(self, secret: str) -> bool:
        return self.secret is not None and hmac.compare_digest(self.secret.encode(), secret.encode())


@dataclass(frozen=True)
class Resource:
    """A resource (web API) tokens are issued for."""

    app_id: str  # its app registration's client id (the API's) or its own identifier (first party)
    identifiers: tuple[str, ...]  # what a scope may name it by
    display_name: str
    token_version: int
    delegated_scopes: tuple[str, ...] = ("user_impersonation",)
    app_roles: tuple[str, ...] = ()

    def canonical_scope(self, name: str) -> str:
        return f"{self.identifiers[0]}/{name}"


class Directory:
    """Users, apps and resources of the tenant; lookups by the names requests use."""

    def __init__(self) -> None:
        self.users = {user.name: user for user in USERS}
        self.applications = {
            API_CLIENT_ID: Application(API_CLIENT_ID, "aml-reactor", "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"),
            OPSCTL_CLIENT_ID: Application(
                OPSCTL_CLIENT_ID, "opsctl", "1c2d3e4f-5a6b-4c7d-9e8f-0a1b2c3d4e5f", public_client=True,
                public_redirect_uris={"http://localhost"},
            ),
            APP_CLIENT_ID: Application(
                APP_CLIENT_ID, "aml-reactor-function-app", "7e6d5c4b-3a2f-4e1d-8c0b-9a8f7e6d5c4b",
                secret=secrets.token_urlsafe(30),
            ),
        }
        api = Resource(API_CLIENT_ID, (API_IDENTIFIER_URI, API_CLIENT_ID, f"api://{API_CLIENT_ID}"), "aml-reactor", 2,
                       app_roles=APP_ROLES)
        first_party = [Resource(uri, (uri,), urlsplit(uri).hostname or uri, 1) for uri in FIRST_PARTY]
        self.resources = [api, *first_party]

    @property
    def api(self) -> Resource:
        return self.resources[0]

    def user(self, login: str) -> User | None:
        """The user signing in as `login`: a UPN (any case) or the bare name."""
        name = login.strip().lower().removesuffix(f"@{TENANT_DOMAIN}")
        return self.users.get(name)

    def application(self, client_id: str) -> Application | None:
        return self.applications.get(client_id.lower())

    def application_by_principal(self, principal_id: str) -> Application | None:
        return next((app for app in self.applications.values() if app.principal_id == principal_id), None)

    def resource(self, identifier: str) -> Resource | None:
        """The resource a scope's prefix names: exact, any case, a trailing slash ignored (as Entra matches
        `https://management.azure.com/` and `https://management.azure.com`)."""
        wanted = identifier.rstrip("/").lower()
        for resource in self.resources:
            if wanted in (name.lower() for name in resource.identifiers):
                return resource
        return None

    def roles(self, user: User, resource: Resource) -> tuple[str, ...]:
        """A user's app roles on `resource` (their assignments are on the API app only)."""
        return user.roles if resource is self.api else ()

    def add_spa_redirect_uri(self, uri: str) -> None:
        """Register `uri` as a `spa` redirect URI of the API app (the control room's page)."""
        self.applications[API_CLIENT_ID].spa_redirect_uris.add(uri)

    def grant_app_role(self, client_id: str, role: str) -> None:
        """Grant an application an app role of the API (admin consent to an application permission)."""
        if role not in APP_ROLES:
            raise ValueError(f"the API has no app role {role!r}")
        self.applications[client_id].app_roles_held.setdefault(API_CLIENT_ID, set()).add(role)
