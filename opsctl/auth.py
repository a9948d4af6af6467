"""Signing people in: Entra ID access tokens for the app's people's routes, through azure-identity.

`opsctl login` reads where to sign in from the app (`GET /api/ops/signin`: authority, tenant, the
app's client id and scope), checks that it is a place worth sending a person to, signs in (device
code, browser or the Azure CLI) and saves what later commands need: the app's sign-in answer and
azure-identity's `AuthenticationRecord` (which account; no secret), under `$OPSCTL_CONFIG_DIR`
(default `~/.config/opsctl/`), files 0600. The tokens themselves live in azure-identity's persistent
token cache named `opsctl` (the keyring where there is one; on Linux without one, the unencrypted
file `~/.IdentityService/opsctl.nocae`, 0600), so later commands get theirs silently and refresh
tokens do the rest.

A token is sent only as `Authorization: Bearer`, only to the app it was asked for, only over https
(plain http to an app on this machine), and printed only by `opsctl token`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from opsctl.client import ApiFailure, is_local

CREDENTIAL_ENV = "OPSCTL_CREDENTIAL"
CACHE_NAME = "opsctl"  # azure-identity's persistent token cache, shared by every opsctl sign-in
DEVICE_CODE, BROWSER, AZURE_CLI = "device-code", "browser", "azure-cli"
SAVED = "saved"  # the account of a saved AuthenticationRecord, silently (never a prompt)
# The public clouds' Microsoft Entra login hosts: the only remote places opsctl signs people in at.
ENTRA_HOSTS = frozenset({"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
                         "login.partner.microsoftonline.cn"})
# A local Entra ID stand-in, trusted only when the app itself is on this machine.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
RENEW_BEFORE = 120  # seconds: a token closer than this to its expiry is asked for again
NOT_SIGNED_IN = "not signed in: run opsctl login"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

T = TypeVar("T")


class NotSignedIn(ApiFailure):
    """No saved sign-in for the app (or one that no longer gives a token without the person)."""


class Token(Protocol):
    token: str
    expires_on: int


# Makes the credential opsctl asks for tokens: anything with `get_token(scope)` answering a Token, and for
# login `authenticate(scopes=...)` answering a record with `serialize()` (azure-identity's, or a test's fake).
# how ("device-code", "browser", "azure-cli" or "saved"), where, the saved record (for "saved"), where prompts go
CredentialFactory = Callable[[str, "SignIn", "str | None", TextIO], Any]


# Where people sign in ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The app's `GET ops/signin` answer, checked: where opsctl may send a person to sign in."""

    authority: str  # https://<host>/<tenant>, as the app named it
    host: str  # https://<host>: azure-identity's `authority`
    tenant_id: str
    client_id: str  # the app's registration: the audience of its tokens
    scope: str  # <client id>/.default
    opsctl_client_id: str | None  # the CLI's public client registration, if the app has one
    loopback: bool  # a local Entra ID stand-in: no instance discovery (MSAL would ask login.microsoftonline.com)

    @property
    def public_client_id(self) -> str:
        """Who opsctl signs in as: the CLI's registration, else the app's own (a public client then)."""
        return self.opsctl_client_id or self.client_id

    @classmethod
    def checked(cls, answer: Any, app_url: str) -> SignIn:
        """The answer as a SignIn, or ApiFailure saying why opsctl will not sign in there."""
        if not isinstance(answer, dict):
            raise ApiFailure("the app's ops/signin answer is not a JSON object")
        fields = {name: answer.get(name) for name in ("authority", "tenant_id", "client_id", "scope")}
        missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
        if missing:
            raise ApiFailure(f"the app's ops/signin answer lacks {', '.join(missing)}")
        tenant, client, scope = str(fields["tenant_id"]), str(fields["client_id"]), str(fields["scope"])
        opsctl_client = answer.get("opsctl_client_id")
        for name, value in (("tenant_id", tenant), ("client_id", client), ("opsctl_client_id", opsctl_client)):
            if value is not None and not (isinstance(value, str) and _GUID.match(value)):
                raise ApiFailure(f"the app's ops/signin {name} is not a GUID: {value!r}")
        if scope != f"{client}/.default":
            # A token for another resource (Azure Resource Manager, Graph) would be sent to the app.
            raise ApiFailure(f"refusing to sign in: the app asks for tokens for {scope!r}, not for itself "
                             f"({client}/.default)")
        host, loopback = trusted_authority(str(fields["authority"]), tenant, app_url)
        return cls(authority=str(fields["authority"]).rstrip("/"), host=host, tenant_id=tenant, client_id=client,
                   scope=scope, opsctl_client_id=opsctl_client, loopback=loopback)

    def saved(self) -> dict[str, Any]:
        """As the app answered it (checked again when read back)."""
        return {"authority": self.authority, "tenant_id": self.tenant_id, "client_id": self.client_id,
                "scope": self.scope, "opsctl_client_id": self.opsctl_client_id}


def trusted_authority(authority: str, tenant_id: str, app_url: str) -> tuple[str, bool]:
    """`https://<host>` of an authority opsctl may sign people in at, and whether it is on loopback.

    A public Microsoft Entra login host, or (only for an app on this machine) a loopback host: a
    remote app naming any other place would have people type their password, or send their code,
    where it chose. The path must be the app's tenant and nothing else.
    """
    parts = urllib.parse.urlsplit(authority.strip())
    host = (parts.hostname or "").lower()
    refused = f"refusing to sign in at {authority!r} (the app's authority)"
    if parts.scheme != "https" or not host or parts.query or parts.fragment or parts.username or parts.password:
        raise ApiFailure(f"{refused}: it must be https://<login host>/<tenant>")
    if parts.path.strip("/") != tenant_id:
        raise ApiFailure(f"{refused}: its path must be the app's tenant {tenant_id}")
    try:
        port = parts.port
    except ValueError:
        raise ApiFailure(f"{refused}: its port is not a number") from None
    if host in ENTRA_HOSTS:
        if port not in (None, 443):
            raise ApiFailure(f"{refused}: Microsoft Entra answers on port 443 only")
        return f"https://{host}", False
    if host in LOOPBACK_HOSTS:
        if not is_local(app_url):
            raise ApiFailure(f"{refused}: a loopback authority is trusted only for an app on this machine, "
                             f"and {app_url} is not")
        netloc = f"[{host}]" if ":" in host else host
        return f"https://{netloc}{f':{port}' if port else ''}", True
    raise ApiFailure(f"{refused}: {host} is not a Microsoft Entra login host ({', '.join(sorted(ENTRA_HOSTS))})")


def check_transport(app_url: str) -> None:
    """A token goes over https, or plain http to an app on this machine; never anywhere else."""
    scheme = urllib.parse.urlsplit(app_url).scheme.lower()
    if scheme != "https" and not (scheme == "http" and is_local(app_url)):
        raise ApiFailure(f"refusing to send a token to {app_url}: use the app's https URL "
                         "(plain http only for an app on this machine)")


# What is saved ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    """One app's sign-in: where (the app's answer), how, and the account (azure-identity's record)."""

    signin: SignIn
    credential: str  # device-code, browser or azure-cli
    record: str | None  # the serialized AuthenticationRecord (none for the Azure CLI)
    record_file: Path | None


class Store:
    """`signins.json` (each app URL's sign-in answer and how it signed in) and `records/` (one
    AuthenticationRecord per authority and client id), every file 0600 in a 0700 directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = root / "signins.json"

    def load(self, app_url: str) -> Saved | None:
        entry = self._entries().get(app_key(app_url))
        if not isinstance(entry, dict):
            return None
        try:
            signin = SignIn.checked(entry.get("signin"), app_url)
        except ApiFailure as failure:
            raise ApiFailure(f"the saved sign-in for {app_url} is not usable ({failure}): run opsctl login") from None
        credential = entry.get("credential")
        if credential == AZURE_CLI:
            return Saved(signin, AZURE_CLI, None, None)
        if credential not in (DEVICE_CODE, BROWSER) or not isinstance(entry.get("record"), str):
            return None
        path = self.root / "records" / entry["record"]
        try:
            record = path.read_text()
            account = json.loads(record)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise ApiFailure(f"cannot read the saved sign-in {path}: {error}") from None
        if not isinstance(account, dict) or _netloc(str(account.get("authority", ""))) != _netloc(signin.host):
            raise ApiFailure(f"the saved sign-in {path} is for another authority than {signin.host}: run opsctl login")
        return Saved(signin, credential, record, path)

    def save(self, app_url: str, signin: SignIn, credential: str, record: str | None) -> Path | None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = None
        entry: dict[str, Any] = {"signin": signin.saved(), "credential": credential,
                                 "saved": datetime.now(UTC).isoformat(timespec="seconds")}
        if record is not None:
            path = self.root / "records" / record_name(signin.host, signin.tenant_id, signin.public_client_id)
            write_private(path, record)
            entry["record"] = path.name
        entries = self._entries()
        entries[app_key(app_url)] = entry
        write_private(self.index, json.dumps(entries, indent=2) + "\n")
        return path

    def forget(self, app_url: str) -> bool:
        """Forget the app's sign-in, and its record unless another app's sign-in shares it."""
        entries = self._entries()
        entry = entries.pop(app_key(app_url), None)
        if entry is None:
            return False
        write_private(self.index, json.dumps(entries, indent=2) + "\n")
        record = entry.get("record") if isinstance(entry, dict) else None
        shared = any(isinstance(other, dict) and other.get("record") == record for other in entries.values())
        if isinstance(record, str) and not shared:
            (self.root / "records" / record).unlink(missing_ok=True)
        return True

    def _entries(self) -> dict[str, Any]:
        try:
            entries = json.loads(self.index.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise ApiFailure(f"cannot read {self.index}: {error}") from None
        return entries if isinstance(entries, dict) else {}


def app_key(app_url: str) -> str:
    parts = urllib.parse.urlsplit(app_url.strip())
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def record_name(host: str, tenant_id: str, client_id: str) -> str:
    """`<host>_<port>.<tenant>.<client>.json`: one record per authority and client id."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", _netloc(host)).strip("_")
    return f"{safe}.{tenant_id.lower()}.{client_id.lower()}.json"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (0600, in directories 0700), atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _netloc(url: str) -> str:
    return (urllib.parse.urlsplit(url if "//" in url else f"//{url}").netloc or "").lower().removesuffix(":443")


# Credentials ------------------------------------------------------------------------------


def azure_identity(how: str, signin: SignIn, record: str | None, err: TextIO) -> Any:
    """The azure-identity credential for `how`; every person's credential shares the persistent cache."""
    try:
        from azure import identity
    except ImportError:
        raise ApiFailure("signing in needs azure-identity: pip install azure-identity") from None
    if how == AZURE_CLI:
        return identity.AzureCliCredential(tenant_id=signin.tenant_id)
    options: dict[str, Any] = {
        "tenant_id": signin.tenant_id,
        "cache_persistence_options": identity.TokenCachePersistenceOptions(name=CACHE_NAME,
                                                                           allow_unencrypted_storage=True),
    }
    if signin.loopback:
        options["disable_instance_discovery"] = True
    if how == SAVED:
        if record is None:
            raise NotSignedIn(NOT_SIGNED_IN)
        # The record names the authority and client id; never a prompt: a token comes from the cache or not at all.
        return identity.DeviceCodeCredential(authentication_record=identity.AuthenticationRecord.deserialize(record),
                                             disable_automatic_authentication=True, **options)
    if how == BROWSER:
        # No redirect_uri: azure-identity listens on http://localhost:<a free port from 8400>, which the
        # registration's redirect URI `http://localhost` covers (Entra ignores the port of localhost).
        return identity.InteractiveBrowserCredential(client_id=signin.public_client_id, authority=signin.host,
                                                     **options)
    return identity.DeviceCodeCredential(signin.public_client_id, authority=signin.host,
                                         prompt_callback=device_code_prompt(err), **options)


def device_code_prompt(err: TextIO) -> Callable[[str, str, datetime], None]:
    """Entra's own instruction line, on stderr (azure-identity would print it on stdout), flushed at once."""

    def prompt(verification_uri: str, user_code: str, expires_on: datetime) -> None:
        print(f"To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} "
              "to authenticate.", file=err, flush=True)
        print(f"(the code expires at {expires_on.astimezone():%H:%M:%S}; Ctrl-C stops)", file=err, flush=True)

    return prompt


def guarded(call: Callable[[], T], how: str) -> T:
    """`call()`, with azure-identity's and MSAL's errors as one line each (never a traceback)."""
    try:
        return call()
    except ApiFailure:
        raise
    except Exception as error:  # ClientAuthenticationError, CredentialUnavailableError, ServiceRequestError, ...
        raise _failure(error, how) from None


def _failure(error: Exception, how: str) -> ApiFailure:
    kinds = {cls.__name__ for cls in type(error).__mro__}
    text = str(getattr(error, "message", None) or error).strip()
    line = text.splitlines()[0].strip() if text else type(error).__name__
    if "AuthenticationRequiredError" in kinds:
        return NotSignedIn("the saved sign-in gives no token any more (expired, revoked, or the token cache "
                           "was cleared): run opsctl login")
    if how == BROWSER and "CredentialUnavailableError" in kinds:
        return ApiFailure(f"sign-in failed: {line} (without a browser here: opsctl login --device-code)")
    if how == AZURE_CLI:
        return ApiFailure(f"the Azure CLI gave no token for the app: {line} (is it installed and signed in "
                          "with az login? The app's registration must allow the Azure CLI as a client)")
    if "AzureError" not in kinds and not isinstance(error, ValueError | OSError):
        line = f"{type(error).__name__}: {line}"
    return ApiFailure(f"sign-in failed: {line}")


# A person's sign-in to one app --------------------------------------------------------------


class Auth:
    """The sign-in opsctl uses for one app URL: login, logout, and the token for people's routes."""

    def __init__(self, url: str, store: Store, factory: CredentialFactory, *, azure_cli: bool = False,
                 err: TextIO | None = None) -> None:
        self.url = url
        self.store = store
        self.factory = factory
        self.azure_cli = azure_cli
        self.err = err
        self._token: Token | None = None
        self._credential: tuple[str, Any] | None = None

    def signin(self, fetch: Callable[[], Any]) -> SignIn:
        """The app's `ops/signin` answer (`fetch()` asks for it), checked."""
        return SignIn.checked(fetch(), self.url)

    def login(self, fetch: Callable[[], Any], how: str,
              starting: Callable[[SignIn], None] | None = None) -> tuple[Saved, dict[str, Any]]:
        """Sign in `how` (`starting` is told where, once opsctl trusts it), save the sign-in, and answer
        it with the new token's claims."""
        signin = self.signin(fetch)
        check_transport(self.url)
        if starting is not None:
            starting(signin)
        credential = self.factory(how, signin, None, self._err())
        if how == AZURE_CLI:
            token = guarded(lambda: credential.get_token(signin.scope), how)
            record = None
        else:
            found = guarded(lambda: credential.authenticate(scopes=[signin.scope]), how)
            record = found.serialize()
            token = guarded(lambda: credential.get_token(signin.scope), how)
        path = self.store.save(self.url, signin, how, record)
        self._token, self._credential = token, (how, credential)
        return Saved(signin, how, record, path), claims(token.token)

    def logout(self) -> bool:
        self._token = self._credential = None
        return self.store.forget(self.url)

    def token(self, fetch: Callable[[], Any]) -> tuple[Token, Saved | None, str]:
        """A token for the app's people's routes (this process keeps it until shortly before it expires),
        the saved sign-in it came from, and how it was got."""
        saved = self.store.load(self.url)
        how = AZURE_CLI if self.azure_cli or (saved and saved.credential == AZURE_CLI) else SAVED
        if self._token is not None and self._token.expires_on - time.time() > RENEW_BEFORE:
            return self._token, saved, how
        if how == SAVED and saved is None:
            raise NotSignedIn(NOT_SIGNED_IN)
        signin = saved.signin if saved else self.signin(fetch)
        check_transport(self.url)
        if self._credential is None or self._credential[0] != how:
            record = saved.record if saved else None
            self._credential = (how, guarded(lambda: self.factory(how, signin, record, self._err()), how))
        credential = self._credential[1]
        self._token = guarded(lambda: credential.get_token(signin.scope), how)
        return self._token, saved, how

    def bearer(self, fetch: Callable[[], Any]) -> str:
        return self.token(fetch)[0].token

    def refused(self) -> None:
        """The app refused the token (401): ask for another next time."""
        self._token = None

    def _err(self) -> TextIO:
        return self.err or sys.stderr


def claims(token: str) -> dict[str, Any]:
    """The token's claims, read without verifying anything: for showing who is signed in, only (the app
    verifies each token itself: signature, issuer, audience, expiry)."""
    try:
        payload = token.split(".")[1]
        found = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise ApiFailure("the token is not a JWT whose claims opsctl can read") from None
    if not isinstance(found, dict):
        raise ApiFailure("the token is not a JWT whose claims opsctl can read")
    return found


def azure_cli_from_env() -> bool:
    """`$OPSCTL_CREDENTIAL`: `azure-cli`, or unset for the sign-in `opsctl login` saved."""
    value = os.environ.get(CREDENTIAL_ENV, "").strip().lower()
    if value not in ("", AZURE_CLI):
        raise ApiFailure(f"${CREDENTIAL_ENV} must be {AZURE_CLI} (or unset, for the sign-in opsctl login saved), "
                         f"not {value!r}")
    return value == AZURE_CLI
