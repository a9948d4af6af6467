"""Run the local Entra ID stand-in (`localentra/`) and get real tokens from it, as people and the app would.

`running_local_entra(certificates)` serves it over HTTPS on loopback with the local Azure
ML service's certificates (their CA is the one the app trusts). `LocalEntraStack` then gives:

- `token_for(user, scopes)`: a person's access token got through a real flow, MSAL Python's
  device code flow as the `opsctl` public client, the verification page completed over HTTP
  as that person before MSAL polls; cached per user and scopes until five minutes before it
  expires.
- `complete_device_login(user_code, user)`: that page's part alone, for tests that run a CLI
  which prints its code.
- `app_token(scope)`: the function app's own token, by the client credentials grant its
  ClientSecretCredential uses, for harness calls made as the app.
- `app_settings()`: what the function app needs: who signs people in (the authority host,
  tenant, the API's client id as the audience, opsctl's client id) and its own identity as a
  confidential client (the `AZURE_*` settings azure-identity's ClientSecretCredential and
  EnvironmentCredential read).

MSAL trusts the stand-in's CA through its own HTTP session (`verify=ca_file`), never through
the process's environment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from localaml.tls import Certificates
from localentra import LocalEntra
from localentra.directory import API_CLIENT_ID, API_SCOPE, APP_CLIENT_ID, OPSCTL_CLIENT_ID, TENANT
from localentra.server import serving

REFRESH_MARGIN = 300  # a cached token is used until this many seconds before it expires


@dataclass
class LocalEntraStack:
    entra: LocalEntra
    ca_file: Path
    _cache: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _msal: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return self.entra.base_url

    @property
    def tenant(self) -> str:
        return TENANT

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{TENANT}"

    @property
    def api_client_id(self) -> str:
        return API_CLIENT_ID

    @property
    def opsctl_client_id(self) -> str:
        return OPSCTL_CLIENT_ID

    @property
    def app_client_id(self) -> str:
        return APP_CLIENT_ID

    @property
    def app_client_secret(self) -> str:
        return self.entra.directory.applications[APP_CLIENT_ID].secret or ""

    def session(self) -> requests.Session:
        """An HTTP session that trusts the stand-in's CA."""
        return session_trusting(self.ca_file)

    def token_for(self, user: str, scopes: list[str] | None = None) -> str:
        """`user`'s access token for `scopes` (the API's `user_impersonation` by default), by the device code flow."""
        wanted = tuple(scopes or [API_SCOPE])
        with self._lock:
            cached = self._cache.get((user, wanted))
            if cached and cached[1] - REFRESH_MARGIN > time.time():
                return cached[0]
            result = self._device_flow(user, list(wanted))
            self._cache[(user, wanted)] = (result["access_token"], time.time() + float(result["expires_in"]))
            return str(result["access_token"])

    def _device_flow(self, user: str, scopes: list[str]) -> dict[str, Any]:
        person = self.entra.directory.user(user)
        if person is None:
            raise ValueError(f"the stand-in's directory has no user {user!r}")
        if self._msal is None:
            self._msal = public_client(self.authority, self.ca_file)
        return device_code_sign_in(self._msal, self.base_url, self.ca_file, person.upn, person.password, scopes)

    def app_token(self, scope: str = "https://management.azure.com/.default") -> str:
        """The function app's own access token for `scope` (client credentials), cached as `token_for`'s."""
        with self._lock:
            cached = self._cache.get(("", (scope,)))
            if cached and cached[1] - REFRESH_MARGIN > time.time():
                return cached[0]
            with self.session() as session:
                answer = session.post(f"{self.authority}/oauth2/v2.0/token", timeout=30, data={
                    "grant_type": "client_credentials", "client_id": APP_CLIENT_ID,
                    "client_secret": self.app_client_secret, "scope": scope})
            if answer.status_code != 200:
                raise RuntimeError(f"no app token for {scope}: {answer.text}")
            body = answer.json()
            self._cache[("", (scope,))] = (body["access_token"], time.time() + float(body["expires_in"]))
            return str(body["access_token"])

    def complete_device_login(self, user_code: str, user: str) -> None:
        """Sign in at the verification page as `user` (a name of directory.USERS) with the code a device shows."""
        person = self.entra.directory.user(user)
        if person is None:
            raise ValueError(f"the stand-in's directory has no user {user!r}")
        enter_device_code(self.base_url, self.ca_file, user_code, person.upn, person.password)

    def app_settings(self) -> dict[str, str]:
        """The function app's settings: who signs people in, and its own identity (a confidential client)."""
        return {
            "MLOPS_AUTH_AUTHORITY": self.base_url,
            "MLOPS_AUTH_TENANT_ID": TENANT,
            "MLOPS_AUTH_CLIENT_ID": API_CLIENT_ID,
            "MLOPS_AUTH_OPSCTL_CLIENT_ID": OPSCTL_CLIENT_ID,
            "AZURE_AUTHORITY_HOST": self.base_url,
            "AZURE_TENANT_ID": TENANT,
            "AZURE_CLIENT_ID": APP_CLIENT_ID,
            "AZURE_CLIENT_SECRET": self.app_client_secret,
        }


def session_trusting(ca_file: Path) -> requests.Session:
    """An HTTP session that trusts the stand-in's CA (and no proxy, nor the environment's CA bundle, which would
    take precedence over its own `verify` in requests)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    return session


def public_client(authority: str, ca_file: Path) -> Any:
    """MSAL's public client application of `opsctl`, at the stand-in's authority."""
    import msal

    return msal.PublicClientApplication(OPSCTL_CLIENT_ID, authority=authority, instance_discovery=False,
                                        http_client=session_trusting(ca_file))


def enter_device_code(base_url: str, ca_file: Path, user_code: str, upn: str, password: str) -> None:
    """What a person does in a browser: open the verification page, enter the code a device shows, sign in."""
    with session_trusting(ca_file) as session:
        response = session.post(f"{base_url}/devicelogin", timeout=30, data={
            "code": user_code, "username": upn, "password": password, "action": "approve"})
    if response.status_code != 200:
        raise RuntimeError(f"the verification page refused {upn} with code {user_code}: {response.status_code}")


def device_code_sign_in(app: Any, base_url: str, ca_file: Path, upn: str, password: str,
                        scopes: list[str]) -> dict[str, Any]:
    """A person's tokens by the device code flow of MSAL's `app`, its code entered on the page as that person
    before MSAL polls: over HTTP only, so a process without the stand-in's object (`./dev register`) signs in
    the same way."""
    flow = app.initiate_device_flow(scopes=scopes)
    if "user_code" not in flow:
        raise RuntimeError(f"the stand-in refused a device code for {scopes}: {flow.get('error_description')}")
    enter_device_code(base_url, ca_file, flow["user_code"], upn, password)
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise RuntimeError(f"no token for {upn} ({scopes}): {result.get('error_description')}")
    return dict(result)


@contextmanager
def running_local_entra(certificates: Certificates, port: int = 0) -> Iterator[LocalEntraStack]:
    """Serve the stand-in over HTTPS on a loopback port (a free one by default) until the block ends."""
    with serving(LocalEntra(), certificates, port=port) as entra:
        yield LocalEntraStack(entra, certificates.ca_file)
