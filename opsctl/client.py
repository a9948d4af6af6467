"""The HTTP client of the admin and scoring APIs: what each route takes (a person's token, the
function key, or nothing), and where the function key comes from."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import requests

KEY_ENV = "MLOPS_FUNCTION_KEY"
URL_ENV = "MLOPS_API_URL"
KEY_FILE_ENV = "MLOPS_KEY_FILE"
DEFAULT_URL = "http://127.0.0.1:7071"
# Where `./dev host` (tools/local_stack.py) and `python -m devhost` keep the local host's keys
# (devhost.keys.HostKeys), and where `./dev host` says which URL it serves.
LOCAL_KEY_FILES = (Path(".localdev/keys.json"), Path(".devhost/keys.json"))
LOCAL_CONNECTION = Path(".localdev/connection.json")
LOCAL_STACK_FILE = "local-stack.json"  # in the opsctl config folder: the checkout whose ./dev host last started
CONFIG_ENV = "OPSCTL_CONFIG_DIR"


class ApiFailure(Exception):
    """The API answered with an error, could not be reached, or the request could not be made."""


class Bearer(Protocol):
    """A person's sign-in (opsctl.auth.Auth): the token for people's routes, asked for when one is needed."""

    def bearer(self, fetch: Callable[[], Any]) -> str: ...

    def refused(self) -> None: ...


# Routes machines call with the function key (probes, batch scoring), and the public one that says
# where people sign in; every other route is a person's and takes their Entra ID token.
KEY_ROUTES = ("ops/health", "score")
PUBLIC_ROUTES = ("ops/signin",)


def route_access(path: str) -> str:
    """`key`, `public` or `person`: what a route of the app takes."""
    if path in PUBLIC_ROUTES:
        return "public"
    if any(path == route or path.startswith(route + "/") for route in KEY_ROUTES):
        return "key"
    return "person"


class Client:
    """Calls `<url>/api/<path>`, with the function key on machines' routes and the person's token
    (`Authorization: Bearer`) on theirs; answers the JSON document.

    Both are asked for only when a route needs them: a person's command never reads a key file,
    and `health` needs no sign-in.
    """

    def __init__(self, url: str, key: str | Callable[[], str | None] | None = None, auth: Bearer | None = None,
                 timeout: float = 60) -> None:
        self.url = url
        self.base = url.rstrip("/") + "/api/"
        self.auth = auth
        self.timeout = timeout
        self._key = key

    def key(self) -> str | None:
        if callable(self._key):
            self._key = self._key()  # once: an unreadable key file fails the first machine's call only
        return self._key if isinstance(self._key, str) else None

    def headers(self, path: str) -> dict[str, str]:
        access = route_access(path)
        if access == "key":
            key = self.key()
            return {"x-functions-key": key} if key else {}
        if access == "person":
            if self.auth is None:
                raise ApiFailure("this command needs a signed-in person: run opsctl login")
            return {"Authorization": f"Bearer {self.auth.bearer(lambda: self.call('GET', 'ops/signin'))}"}
        return {}

    def call(self, method: str, path: str, *, body: Any = None, text: str | None = None,
             params: Mapping[str, Any] | None = None, ok: Sequence[int] = ()) -> Any:
        """The JSON answer; ApiFailure with the API's own message (and field) when it refuses."""
        headers = self.headers(path)
        try:
            response = requests.request(
                method, self.base + path, headers=headers, timeout=self.timeout,
                params={name: value for name, value in (params or {}).items() if value is not None},
                json=body if text is None else None, data=text.encode() if text is not None else None,
            )
        except requests.RequestException as error:
            raise ApiFailure(f"cannot reach {self.base}: {_short(error)}") from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.ok or response.status_code in ok:
            return document
        said = document["error"] if isinstance(document, dict) and "error" in document else None
        if response.status_code == 401:
            if route_access(path) == "key":
                raise ApiFailure(f"401: the function key is missing or wrong (--key, ${KEY_ENV} or --key-file)")
            if route_access(path) == "person" and self.auth is not None:
                self.auth.refused()
                raise ApiFailure(f"401: {said or 'the app refused the token'}; sign in again: opsctl login")
        if said is not None:
            field = f" (field: {document['field']})" if document.get("field") else ""
            raise ApiFailure(f"{response.status_code}: {said}{field}")
        raise ApiFailure(f"{response.status_code}: {response.text[:300] or response.reason}")


def segment(value: str) -> str:
    """`value` as one URL path segment, so that a name can never reach another route."""
    return urllib.parse.quote(value, safe="")


def function_key(url: str, key: str | None, key_file: Path | None) -> str | None:
    """The key to send: `--key`, else `$MLOPS_FUNCTION_KEY`, else the `function` key of a keys file.

    The keys file is `--key-file` (or `$MLOPS_KEY_FILE`) when given, which must then be
    readable; otherwise the local host's (`.localdev/keys.json`, else `.devhost/keys.json`),
    read only when it exists and the URL is on this machine, so a local key is never sent to
    a remote app.
    """
    if key:
        return key
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    explicit = key_file or (Path(os.environ[KEY_FILE_ENV]) if os.environ.get(KEY_FILE_ENV) else None)
    if explicit is None:
        found = [found for path in LOCAL_KEY_FILES if (found := local_file(path)) is not None]
        if not (is_local(url) and found):
            return None
        explicit = found[0]
    try:
        keys = json.loads(explicit.read_text())
    except OSError as error:
        raise ApiFailure(f"cannot read the key file {explicit}: {error.strerror}") from None
    except ValueError:
        raise ApiFailure(f"the key file {explicit} is not JSON") from None
    if not isinstance(keys, dict) or not isinstance(keys.get("function"), str):
        raise ApiFailure(f"the key file {explicit} has no 'function' key")
    return keys["function"]


def default_url() -> str:
    """`$MLOPS_API_URL`, else the URL `./dev host` wrote in `.localdev/connection.json`, else the
    Functions host's default."""
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    connection = local_file(LOCAL_CONNECTION)
    try:
        host = json.loads(connection.read_text()).get("host") if connection else None
    except (OSError, ValueError, AttributeError):
        host = None
    return host if isinstance(host, str) and host else DEFAULT_URL


def config_dir() -> Path:
    """`$OPSCTL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/opsctl`, else `~/.config/opsctl`."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opsctl"


def local_file(relative: Path) -> Path | None:
    """`relative` (a file `./dev host` writes) in this folder or the nearest one above it that has it, so that
    opsctl finds the local stack from anywhere in the checkout; from elsewhere, in the checkout whose
    `./dev host` last started (it says where in the user's opsctl config, `local-stack.json`)."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / relative).is_file():
            return folder / relative
    checkout = last_local_stack()
    return checkout / relative if checkout and (checkout / relative).is_file() else None


def last_local_stack() -> Path | None:
    """The checkout whose `./dev host` last started on this machine, or None."""
    try:
        folder = json.loads((config_dir() / LOCAL_STACK_FILE).read_text()).get("checkout")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(folder) if isinstance(folder, str) and Path(folder).is_absolute() else None


def remember_local_stack(checkout: Path) -> Path:
    """Note in the user's opsctl config that `checkout` runs the local stack, so that opsctl finds it from any
    folder (`./dev host` calls this). The file names a folder only: no key, no token. 0600, as opsctl's others."""
    path = config_dir() / LOCAL_STACK_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"checkout": str(checkout.resolve())}))
    temporary.chmod(0o600)
    temporary.replace(path)
    return path


@contextlib.contextmanager
def trust_local_ca(url: str) -> Iterator[None]:
    """For an app on this machine, trust the CA `./dev host` names in `.localdev/connection.json` (the local
    Entra ID's and Azure ML's) while the block runs, unless `REQUESTS_CA_BUNDLE` already says which CA to
    trust. requests, azure-identity and MSAL all read that variable."""
    ca_file = None if os.environ.get("REQUESTS_CA_BUNDLE") or not is_local(url) else _local_ca()
    if ca_file is None:
        yield
        return
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    try:
        yield
    finally:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)


def _local_ca() -> str | None:
    connection = local_file(LOCAL_CONNECTION)
    try:
        ca_file = json.loads(connection.read_text())["azureml"]["REQUESTS_CA_BUNDLE"] if connection else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ca_file if isinstance(ca_file, str) and Path(ca_file).is_file() else None


def is_local(url: str) -> bool:
    """Whether `url` points at this machine (a loopback address or `localhost`)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _short(error: requests.RequestException) -> str:
    """The OS's reason (`Connection refused`) rather than urllib3's nested retry text."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    return found.group(1) if found else f"{type(error).__name__}: {str(error)[:200]}"
