"""The local Azure ML service (`localaml/`) stands on its own: it is held to Azure, never to the app.

None of its modules imports the app (`shared`, `handlers`, `function_app`), its harness (`devhost`,
`tools`) or anything else of the repo outside `localaml/`, at module level or inside a function, so
where the app is wrong the service cannot agree with it by construction. What starts the service and
builds the app's clients lives on the harness side (`devhost/localaml.py`). The two sides of the local
token are written apart, the app's to make one and the service's to check one; the tests here hold
them to the same format.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from devhost import azurite
from localaml import credential, datastores
from localaml.service import identity
from localentra.directory import APP_CLIENT_ID, Directory
from localentra.keys import KeySet
from localentra.scopes import ResourceScopes
from localentra.tokens import Grant, TokenIssuer

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "localaml"
SERVICE_MODULES = sorted(SERVICE.rglob("*.py"))
# The repo's own top-level packages and modules besides the service: what the service may not import.
REPO = frozenset(
    path.stem if path.is_file() else path.name
    for path in ROOT.iterdir()
    if (path.is_dir() and (path / "__init__.py").exists()) or (path.is_file() and path.suffix == ".py")
) - {"localaml"}
FORBIDDEN = REPO | {"shared", "handlers", "devhost", "tools", "function_app"}


def imported(source: str, module: str) -> set[str]:
    """Every module `source` (the text of module `module`) imports: `import x`, `from x import y` (relative ones
    resolved), anywhere in the tree (module level, functions, classes, `if TYPE_CHECKING:`, `try:`), and
    `importlib.import_module("x")` / `__import__("x")` with a literal name."""
    package = module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module or "")
        elif isinstance(node, ast.ImportFrom):
            up = node.level - 1
            if up > len(package):
                found.add(".")  # above the top level: not importable, reported all the same
                continue
            base = package[: len(package) - up]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found |= {".".join([*base, alias.name]) for alias in node.names}
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def outside_the_service(source: str, module: str) -> set[str]:
    """The imports of `source` that reach the repo outside `localaml/`."""
    return {name for name in imported(source, module) if name.split(".")[0] in FORBIDDEN or name == "."}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_forbidden_names_are_the_repo_outside_the_service() -> None:
    """The walk below would prove nothing if the names it looks for missed the app or the harness."""
    assert {"shared", "handlers", "devhost", "tools", "function_app", "opsctl"} <= FORBIDDEN
    assert "localaml" not in FORBIDDEN
    assert len(SERVICE_MODULES) > 15 and SERVICE / "service.py" in SERVICE_MODULES


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_service_module_imports_the_app_or_its_harness(path: Path) -> None:
    assert outside_the_service(path.read_text(encoding="utf-8"), module_name(path)) == set()


SYNTHETIC = '''
from __future__ import annotations
import json, shared.domain.events
from typing import TYPE_CHECKING
from localaml.errors import Reply
from . import errors
import sharedlib
import toolsy.thing
if TYPE_CHECKING:
    from handlers.http import route
try:
    import tools.register_assets as assets
except ImportError:
    pass

def serve():
    from devhost.azurite import ACCOUNT
    import importlib
    importlib.import_module("function_app")
    return __import__("opsctl.cli")

class Service:
    def check(self):
        from shared.adapters.azureml.localservice import local_token
        from .. import shared
'''


def test_the_walk_finds_every_kind_of_import_and_only_those_outside_the_service() -> None:
    """Module level and function level, `import x` and `from x import y`, under TYPE_CHECKING and try, in classes,
    dynamic imports by literal name, and a relative import that leaves the package."""
    assert outside_the_service(SYNTHETIC, "localaml.fake") == {
        "shared.domain.events", "handlers.http", "tools.register_assets", "devhost.azurite", "function_app",
        "opsctl.cli", "shared.adapters.azureml.localservice", "shared",
    }
    assert {"json", "localaml.errors", "sharedlib", "toolsy.thing"} <= imported(SYNTHETIC, "localaml.fake")


def test_the_walk_finds_a_single_app_import_in_a_function() -> None:
    source = "def handler():\n    from shared.domain.events import BREACH_TAG\n    return BREACH_TAG\n"
    assert outside_the_service(source, "localaml.monitoring") == {"shared.domain.events"}
    assert outside_the_service("import localaml.errors\n", "localaml.monitoring") == set()


# Run in a fresh interpreter where the app and the harness cannot be imported at all.
WITHOUT_THE_APP = """
import importlib, importlib.abc, pkgutil, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {forbidden!r}:
            raise ImportError(f"{{name}} may not be imported by the local Azure ML service")
        return None

sys.meta_path.insert(0, Refuse())
import localaml
for module in pkgutil.iter_modules(localaml.__path__):
    importlib.import_module(f"localaml.{{module.name}}")
print(sorted(name for name in sys.modules if name.startswith("localaml")))
"""


def test_every_service_module_imports_where_the_app_cannot_be_imported() -> None:
    script = WITHOUT_THE_APP.format(forbidden=sorted(FORBIDDEN))
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    loaded = ast.literal_eval(run.stdout.strip().splitlines()[-1])
    assert {module_name(path) for path in SERVICE_MODULES} <= set(loaded)
    probe = WITHOUT_THE_APP.split("import localaml\n")[0].format(forbidden=sorted(FORBIDDEN)) + "import shared\n"
    refused = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "may not be imported" in refused.stderr


# -- the tokens the service takes: Entra ID's, checked as a resource checks them -----------------------------

ENTRA = "https://entra.test"


def checker_of(keys: KeySet, monkeypatch: pytest.MonkeyPatch) -> credential.EntraTokens:
    """The service's token check, its tenant's metadata and keys served from `keys` instead of over HTTPS."""
    checker = credential.EntraTokens(ENTRA)
    documents = {f"{ENTRA}/{credential.TENANT}/.well-known/openid-configuration": {
        "jwks_uri": f"{ENTRA}/common/discovery/keys"}, f"{ENTRA}/common/discovery/keys": keys.jwks(None)}
    monkeypatch.setattr(checker, "_get", lambda url: documents[url])
    return checker


def token(keys: KeySet, resource: str, user: str | None = "dave", issuer: str = ENTRA) -> str:
    directory = Directory()
    found = directory.resource(resource)
    assert found is not None
    grant = Grant(directory.applications[APP_CLIENT_ID], ResourceScopes(found, resource, (".default",)),
                  directory.user(user) if user else None)
    return TokenIssuer(directory, keys).access_token(issuer, grant)


def test_the_service_takes_entra_tokens_for_resource_manager_and_azure_ml_and_reads_who_acts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = KeySet()
    checker = checker_of(keys, monkeypatch)
    for resource in ("https://management.azure.com", "https://management.azure.com/", "https://ml.azure.com"):
        claims = checker.claims(f"Bearer {token(keys, resource)}")
        assert claims is not None and claims["upn"] == "dave@contoso.test" and claims["aud"] == resource
    header = f"Bearer {token(keys, 'https://management.azure.com', user=None)}"
    assert checker.claims(header) is not None
    assert identity({"Authorization": header}) == (APP_CLIENT_ID, "Application")
    assert identity({"authorization": f"Bearer {token(keys, 'https://ml.azure.com')}"}) == ("dave@contoso.test", "User")


def test_the_service_refuses_other_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    keys, other = KeySet(), KeySet()
    checker = checker_of(keys, monkeypatch)
    refused = [
        token(keys, "https://storage.azure.com"),  # another resource's
        token(keys, "api://aml-reactor"),  # a v2.0 token of the API (another issuer and audience)
        token(keys, "https://management.azure.com", issuer="https://elsewhere.test"),  # another tenant's issuer
        token(other, "https://management.azure.com"),  # signed by a key the tenant does not publish
        credential.issue("s3cret", "https://management.azure.com"),  # the service's own kind: no signature
    ]
    assert [checker.claims(f"Bearer {value}") for value in refused] == [None] * len(refused)
    good = token(keys, "https://management.azure.com")
    header, payload, signature = good.split(".")
    forged = ".".join((header, payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"), signature))
    assert checker.claims(f"Bearer {forged}") is None
    assert checker.claims(good) is None, "without its Bearer scheme"
    claims = {**jwt.decode(good, options={"verify_signature": False}), "exp": int(time.time()) - 3600}
    expired = jwt.encode(claims, keys.current.private_pem, algorithm="RS256", headers={"kid": keys.current.kid})
    assert checker.claims(f"Bearer {expired}") is None


def test_the_token_the_service_issues_its_jobs_is_one_it_lets_in() -> None:
    header = f"Bearer {credential.issue('s3cret', 'https://ml.azure.com')}"
    assert credential.token_secret(header) == "s3cret"
    claims = credential.token_claims(header)
    assert (claims["aud"], claims["tid"]) == ("https://ml.azure.com", credential.TENANT)
    assert "upn" not in claims


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer a.b", "Bearer a.b.c.d", "Bearer a.%%%.!!!", "Bearer a.b.//79"],
)
def test_a_header_that_is_no_local_token_carries_no_secret_and_no_claims(authorization: str | None) -> None:
    assert credential.token_secret(authorization) is None
    assert credential.token_claims(authorization) == {}


def test_the_harness_starts_the_storage_account_the_service_assumes() -> None:
    """The service names Azurite's well-known account from Azurite's docs; the harness's Azurite is that account."""
    assert (datastores.ACCOUNT, datastores.ACCOUNT_KEY) == (azurite.ACCOUNT, azurite.ACCOUNT_KEY)
