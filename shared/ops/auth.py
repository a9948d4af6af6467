"""Who is calling, and the optional Entra ID app-role check.

The function key opens the API. When `MLOPS_ADMIN_ROLE` is set, the caller must also
carry that app role in `x-ms-client-principal`, the header App Service authentication
(Easy Auth) adds after validating the caller's token: base64 JSON with a `claims` list
of `{typ, val}`. Easy Auth strips that header from incoming requests, so only turn the
role check on with authentication enabled on the app.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from shared.ops.errors import ApiError

PRINCIPAL = "x-ms-client-principal"
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
_PRINTABLE = re.compile(r"[^\w.@:/ -]")


def roles(principal: str | None) -> set[str]:
    """The app roles in an `x-ms-client-principal` header value (none if absent or unreadable)."""
    document = _decode(principal)
    role_typ = document.get("role_typ") if isinstance(document.get("role_typ"), str) else "roles"
    claims = document.get("claims")
    if not isinstance(claims, list):
        claims = []
    return {
        str(claim.get("val")) for claim in claims
        if isinstance(claim, dict) and claim.get("typ") in (role_typ, *ROLE_CLAIMS)
    }


def authorize(headers: Mapping[str, str], required_role: str | None) -> None:
    """Refuse (403) a caller without the required app role; no role configured lets the key decide."""
    if not required_role:
        return
    if PRINCIPAL not in _lower(headers):
        raise ApiError(403, f"the app role {required_role!r} is required and the request carries no "
                            f"authenticated principal ({PRINCIPAL}); call through App Service authentication")
    if required_role not in roles(_lower(headers)[PRINCIPAL]):
        raise ApiError(403, f"the caller lacks the app role {required_role!r}")


def caller_roles(headers: Mapping[str, str]) -> frozenset[str]:
    """The app roles of the authenticated principal (none without App Service authentication)."""
    return frozenset(roles(_lower(headers).get(PRINCIPAL)))


def actor(headers: Mapping[str, str]) -> str:
    """A name for the audit trail: the authenticated principal's, else the function key's."""
    lowered = _lower(headers)
    name = lowered.get(f"{PRINCIPAL}-name") or _name_claim(_decode(lowered.get(PRINCIPAL)))
    cleaned = _PRINTABLE.sub("", name or "")[:120]
    return f"api:{cleaned}" if cleaned else "api:function-key"


def _name_claim(document: dict) -> str | None:
    for claim in document.get("claims") or []:
        if isinstance(claim, dict) and claim.get("typ") in ("name", "preferred_username"):
            return str(claim.get("val"))
    return None


def _decode(principal: str | None) -> dict:
    if not principal:
        return {}
    try:
        document = json.loads(base64.b64decode(principal + "=" * (-len(principal) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}
