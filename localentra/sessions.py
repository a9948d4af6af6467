"""What the service remembers between requests: authorization codes, device authorizations, refresh tokens.

- An authorization code lives ten minutes and is redeemed once; it is bound to the client,
  the redirect URI, the PKCE challenge, the scopes and the nonce of its /authorize request
  (v2-oauth2-auth-code-flow: "Authorization codes are short lived. Typically, they expire
  after about 10 minutes").
- A device authorization lives 900 s and is polled every 5 s
  (v2-oauth2-device-code: "the user has 15 minutes to sign in").
- A refresh token is an opaque string; one issued to a `spa` redirect URI expires after 24 hours
  and those it is exchanged for keep that expiry (v2-oauth2-auth-code-flow, "Refresh the access
  token"). Using one does not revoke it.

Every store is bounded: past `LIMIT` entries the oldest are dropped, so that a flood of
requests cannot grow the service without end.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import TypeVar

from localentra.directory import User
from localentra.scopes import ScopeRequest

CODE_LIFETIME = 600
DEVICE_LIFETIME = 900
DEVICE_INTERVAL = 5
SPA_REFRESH_LIFETIME = 24 * 3600
LIMIT = 10_000
V = TypeVar("V")
USER_CODE_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "01IO")


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    spa: bool
    challenge: str | None
    method: str | None
    scopes: ScopeRequest
    nonce: str | None
    user: User
    expires: float
    redeemed: bool = False


@dataclass
class DeviceAuthorization:
    device_code: str
    user_code: str
    client_id: str
    scopes: ScopeRequest
    expires: float
    user: User | None = None
    declined: bool = False
    redeemed: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    user: User
    scopes: ScopeRequest  # what the user consented to in the first leg
    expires: float | None  # SPA refresh tokens only


def _bounded_put(store: dict[str, V], key: str, value: V) -> None:
    store[key] = value
    while len(store) > LIMIT:
        store.pop(next(iter(store)))


class Sessions:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: dict[str, AuthorizationCode] = {}
        self.devices: dict[str, DeviceAuthorization] = {}
        self.user_codes: dict[str, str] = {}  # user code -> device code
        self.refresh_tokens: dict[str, RefreshGrant] = {}

    def new_code(self, grant: AuthorizationCode) -> str:
        code = "1.A" + secrets.token_urlsafe(96)
        with self.lock:
            _bounded_put(self.codes, code, grant)
        return code

    def new_device(self, client_id: str, scopes: ScopeRequest) -> DeviceAuthorization:
        with self.lock:
            while True:
                user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(9))
                if user_code not in self.user_codes:
                    break
            device = DeviceAuthorization("DAQABIQEAAAD" + secrets.token_urlsafe(120), user_code, client_id, scopes,
                                         time.time() + DEVICE_LIFETIME)
            _bounded_put(self.devices, device.device_code, device)
            _bounded_put(self.user_codes, user_code, device.device_code)
        return device

    def device_by_user_code(self, user_code: str) -> DeviceAuthorization | None:
        with self.lock:
            device_code = self.user_codes.get(user_code.strip().upper().replace("-", ""))
            return self.devices.get(device_code) if device_code else None

    def new_refresh_token(self, grant: RefreshGrant) -> str:
        token = "1.A" + secrets.token_urlsafe(160)
        with self.lock:
            _bounded_put(self.refresh_tokens, token, grant)
        return token
