"""The service's side of the local token (the app's side: `shared/adapters/azureml/localservice.py`)."""

from __future__ import annotations

import base64

from shared.adapters.azureml.localservice import LocalServiceCredential as LocalCredential
from shared.adapters.azureml.localservice import local_token

__all__ = ["LocalCredential", "local_token", "token_secret"]


def token_secret(authorization: str | None) -> str | None:
    """The secret a bearer token carries, None if the header is not a local token."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        return base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)).decode()
    except ValueError:
        return None
