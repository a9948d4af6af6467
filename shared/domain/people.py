"""Who may act: the app roles of the API's registration, and a person verified from an Entra ID token.

Roles are Entra app roles (the `roles` claim of an access token), assigned to people in the app's
enterprise application. A higher role includes the ones below it, so a person needs one assignment:
an operator reads, an admin operates. Approving is a duty of its own: an admin is not an approver
unless assigned `MLOps.Approver` too, so the person who runs the platform cannot sign off a model alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    READER = "MLOps.Reader"
    OPERATOR = "MLOps.Operator"
    APPROVER = "MLOps.Approver"
    ADMIN = "MLOps.Admin"


INCLUDES: dict[Role, frozenset[Role]] = {
    Role.READER: frozenset(),
    Role.OPERATOR: frozenset({Role.READER}),
    Role.APPROVER: frozenset({Role.READER}),
    Role.ADMIN: frozenset({Role.OPERATOR, Role.READER}),
}


_VALUES = frozenset(role.value for role in Role)


@dataclass(frozen=True)
class Person:
    """A caller whose token the app verified itself.

    `oid` is who they are (stable for the tenant). `name` and `username` (`preferred_username`) are for
    people to read and may change, so nothing is decided on them. `upn` is the optional claim that
    Azure ML's `systemData.createdBy` also holds, which four eyes compares; None when the token has none
    (a guest, an application). `app_id` is set when the caller is an application, not a person.
    """

    oid: str
    name: str
    roles: frozenset[str]
    username: str | None = None
    upn: str | None = None
    app_id: str | None = None

    def holds(self, role: str) -> bool:
        """Whether one of the person's roles is `role` or includes it (a role of another app is only itself)."""
        known = (Role(held) for held in self.roles if held in _VALUES)
        return role in self.roles or any(role in INCLUDES[held] for held in known)

    @property
    def display(self) -> str:
        """How the audit trail and the control room name them: the display name, else the username, else the oid."""
        return self.name or self.username or self.oid

    @property
    def principal(self) -> str | None:
        """The identity Azure ML records for them in systemData (a user's UPN, an application's id)."""
        return self.app_id or self.upn
