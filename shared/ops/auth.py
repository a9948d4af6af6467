"""Who is calling: a person the app verifies itself from an Entra ID bearer token, and what they may do.

Nothing else identifies a caller. `x-ms-client-principal` and its siblings are headers any caller can
write (App Service authentication, which would set them, is not supported on the Flex Consumption
plan), so they are ignored; a function key identifies no one and opens no admin route.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.domain.people import Person, Role
from shared.domain.ports import IdentityUnavailable, TokenRefused, TokenVerifier
from shared.ops.errors import ApiError

MAX_TOKEN_CHARS = 16_384
CHALLENGE = 'Bearer realm="aml-reactor"'


def authenticate(headers: Mapping[str, str], verifier: TokenVerifier | None) -> Person:
    """The verified person behind the request's bearer token; 401 (with a challenge) when there is none."""
    if verifier is None:
        raise ApiError(503, "sign-in is not configured: set MLOPS_AUTH_TENANT_ID and MLOPS_AUTH_CLIENT_ID "
                            "(the app's Entra registration)")
    authorization = next((value for key, value in headers.items() if key.lower() == "authorization"), "")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("sign in: this route needs an Entra ID access token (Authorization: Bearer <token>);"
                               " a function key opens no admin route")
    if len(token) > MAX_TOKEN_CHARS:
        raise _unauthenticated(f"the bearer token is longer than {MAX_TOKEN_CHARS} characters")
    try:
        return verifier.verify(token.strip())
    except TokenRefused as refused:
        raise _unauthenticated(str(refused)) from None
    except IdentityUnavailable as unavailable:
        raise ApiError(503, f"no token can be verified right now: {unavailable}", headers={"Retry-After": "30"}) \
            from None


def authorize(person: Person, role: Role) -> None:
    """Refuse (403, naming the role) a person whose roles do not include `role`."""
    if not person.holds(role):
        held = ", ".join(sorted(person.roles)) or "none"
        raise ApiError(403, f"this needs the app role {role.value}; {person.display} holds {held}")


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})
