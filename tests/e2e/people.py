"""People of the local Entra stand-in, for end-to-end tests: opsctl run in-process as one of them, and the
host's settings that make it accept their tokens."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TextIO

from azure.core.credentials import AccessToken

from devhost.entra import LocalEntraStack
from opsctl import cli


class StandInCredential:
    """What opsctl's credential factory makes, for one person: their token, from the stand-in's device code flow."""

    def __init__(self, entra: LocalEntraStack, user: str) -> None:
        self.entra, self.user = entra, user

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        return AccessToken(self.entra.token_for(self.user), int(time.time()) + 3000)


def opsctl(entra: LocalEntraStack, url: str, user: str, argv: Sequence[str], out: TextIO | None = None) -> int:
    """`opsctl --url <url> <argv>` signed in as `user`: opsctl's own code path for a person's token, with the
    token taken from the stand-in (the real device-code sign-in of the CLI is tests/e2e/test_identity.py's)."""

    def credentials(how: str, signin: Any, record: str | None, err: TextIO) -> StandInCredential:
        return StandInCredential(entra, user)

    return cli.main(["--url", url, "--azure-cli", *argv], out, credentials=credentials)


def host_settings(entra: LocalEntraStack) -> dict[str, str]:
    """What a bare host (no local Azure ML service) needs to verify the stand-in's tokens: who signs people in,
    and trust in the stand-in's CA."""
    return {**entra.app_settings(), "REQUESTS_CA_BUNDLE": str(entra.ca_file)}
