"""The control room's page and files as the function app serves them: security headers, no inline
script, nothing from the internet, a fixed list of files, MSAL.js vendored as npm ships it, no key
or code in a URL, and its two functions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import azure.functions as func
import pytest

from handlers import controlroom as handler
from shared.ops import controlroom
from tools import vendor_msal

FOLDER = Path(controlroom.__file__).parent
ROOT = FOLDER.parents[2]
SCRIPTS = ("app.js", "charts.js")  # the project's own; msal-browser.min.js is npm's
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
AUTHORITY = "https://login.microsoftonline.com/22222222-2222-2222-2222-222222222222"


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text inside each script element."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parsed_page() -> Tags:
    tags = Tags()
    tags.feed(controlroom.page(AUTHORITY).get_body().decode())
    return tags


def test_the_page_is_html_that_forbids_inline_script_framing_and_referrers() -> None:
    response = controlroom.page(AUTHORITY)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self';")
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["Referrer-Policy"] == "no-referrer", "the page's URL is nobody else's business"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_page_has_no_inline_script_handler_or_style() -> None:
    tags = parsed_page()

    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert scripts and all(attrs.get("src") for attrs in scripts)
    assert tags.script_text == []
    for tag, attrs in tags.tags:
        assert not [name for name in attrs if name.startswith("on")], f"<{tag}> has an inline handler"
        assert "style" not in attrs, f"<{tag}> has an inline style, which the CSP blocks"
        assert not str(attrs.get("href", "")).startswith("javascript:")


def test_every_file_the_page_loads_is_served_and_relative() -> None:
    tags = parsed_page()
    loaded = [attrs.get("src") or attrs.get("href") for tag, attrs in tags.tags if tag in ("script", "link")]

    assert loaded
    for url in loaded:
        assert url and url.startswith("controlroom/"), f"{url} must resolve next to the page"
        name = url.removeprefix("controlroom/")
        response = controlroom.asset(name, {}, AUTHORITY)
        assert response.status_code == 200, name
        assert response.headers["Content-Type"] == controlroom.ASSETS[name]
        assert response.headers["Content-Security-Policy"] == controlroom.security_headers(AUTHORITY)[
            "Content-Security-Policy"]


def test_nothing_is_fetched_from_the_internet() -> None:
    """The project's files name no other host. MSAL.js names Microsoft's login hosts (it knows their
    metadata), yet may only reach the app and the authority the app names: the CSP's connect-src."""
    for path in FOLDER.iterdir():
        if path.suffix in (".html", ".js", ".css", ".svg") and path.name != controlroom.MSAL_SCRIPT:
            text = path.read_text().replace(SVG_NAMESPACE, "")
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path.name
            assert "@import" not in text and "url(" not in text, path.name


def test_the_script_never_builds_markup_from_text_or_evaluates_code() -> None:
    for name in SCRIPTS:
        script = (FOLDER / name).read_text()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                      'setAttribute("style"'):
            assert risky not in script, f"{name} uses {risky}"


def test_no_key_or_code_is_handled_by_the_page_and_the_token_goes_in_a_header_only() -> None:
    """The function key is gone: nothing reads `?code=` or sends `x-functions-key`; the access token
    travels in the Authorization header of the API's calls and nowhere else."""
    for name in (*SCRIPTS, "index.html"):
        text = (FOLDER / name).read_text()
        for gone in ("x-functions-key", "code=", 'get("code")', "function key", "KEY"):
            assert gone not in text, f"{name} still has {gone!r}"
    script = (FOLDER / "app.js").read_text()
    assert script.count("accessToken()}`") == 1
    assert '{"authorization": `Bearer ${await accessToken()}`' in script
    assert not re.search(r"(access_token|token)=\$\{|[?&]token", script), "a token must not go into a URL"


def test_the_page_signs_in_with_msal_by_redirect_and_caches_tokens_per_tab() -> None:
    """Authorization code with PKCE by redirect (MSAL.js's only flow for a SPA), the code read from the
    fragment and removed by handleRedirectPromise, tokens from MSAL's sessionStorage cache per call, an
    interactive redirect only when MSAL says so; no popup, no hidden iframe."""
    script = (FOLDER / "app.js").read_text()

    for call in ("app.handleRedirectPromise()", "app.loginRedirect(", "auth.app.acquireTokenSilent(request)",
                 "auth.app.acquireTokenRedirect(", "auth.app.logoutRedirect(", "msal.InteractionRequiredAuthError",
                 'cacheLocation: "sessionStorage"', "msal.CacheLookupPolicy.AccessTokenAndRefreshToken",
                 "msal.ProtocolMode.AAD", "knownAuthorities:", 'fetch(API + "ops/signin"'):
        assert call in script, call
    for never in ("Popup", "ssoSilent", "localStorage", "response_mode", "implicit"):
        assert never not in script, never


def test_the_vendored_msal_is_npms_file_at_the_version_package_lock_pins() -> None:
    """shared/ops/controlroom/msal-browser.min.js is deployed (the function app has no node_modules): it
    must be byte for byte the file of the @azure/msal-browser that package-lock.json pins, so an npm
    update without `python -m tools.vendor_msal` fails here. Its licence travels with it."""
    pinned = vendor_msal.pinned_version(ROOT)
    assert json.loads((ROOT / "package.json").read_text())["devDependencies"]["@azure/msal-browser"] == pinned
    assert pinned.split(".")[0] == "5", "the control room is written for MSAL.js 5.x"
    installed = vendor_msal.installed_version(ROOT)
    assert installed == pinned, (f"node_modules holds @azure/msal-browser {installed}, package-lock.json pins "
                                 f"{pinned}: run npm ci")
    for source, copy in vendor_msal.FILES.items():
        assert copy.read_bytes() == source.read_bytes(), f"{copy.name} is not npm's: python -m tools.vendor_msal"
    script = (FOLDER / controlroom.MSAL_SCRIPT).read_bytes()
    assert script.startswith(f"/*! @azure/msal-browser v{pinned} ".encode()), "its header comment is kept"
    assert (FOLDER / controlroom.MSAL_LICENSE).read_text().startswith("MIT License")


def test_msal_is_served_to_the_page_before_its_own_scripts() -> None:
    sources = [attrs["src"] for tag, attrs in parsed_page().tags if tag == "script"]
    assert sources == ["controlroom/msal-browser.min.js", "controlroom/charts.js", "controlroom/app.js"]

    response = controlroom.asset(controlroom.MSAL_SCRIPT, {}, AUTHORITY)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.get_body() == (FOLDER / controlroom.MSAL_SCRIPT).read_bytes()
    assert controlroom.asset(controlroom.MSAL_LICENSE, {}, AUTHORITY).status_code == 404, "deployed, not served"


def test_the_vendored_msal_has_what_the_page_uses() -> None:
    """The UMD build defines `msal` with the classes and constants app.js names."""
    node = shutil.which("node")
    assert node, "Node.js is needed (the project installs Azurite with it)"
    probe = ("const m = require(process.argv[1]); console.log(JSON.stringify({pca: typeof m.PublicClientApplication, "
             "interaction: typeof m.InteractionRequiredAuthError, "
             "policy: m.CacheLookupPolicy.AccessTokenAndRefreshToken, mode: m.ProtocolMode.AAD}))")
    result = subprocess.run([node, "-e", probe, str(FOLDER / controlroom.MSAL_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"pca": "function", "interaction": "function", "policy": 2, "mode": "AAD"}


def test_msal_needs_nothing_the_csp_forbids() -> None:
    """No eval, no Function constructor, no worker: the CSP keeps script-src at 'self' without 'unsafe-eval'."""
    script = (FOLDER / controlroom.MSAL_SCRIPT).read_text()
    for risky in ("eval(", "new Function", "new Worker", "importScripts"):
        assert risky not in script, risky


@pytest.mark.parametrize("name", ["../__init__.py", "index.html", "__init__.py", "missing.js", "", "a" * 300,
                                  "msal-browser.LICENSE", "msal-browser.js"])
def test_only_the_listed_files_are_served(name: str) -> None:
    response = controlroom.asset(name, {}, AUTHORITY)

    assert response.status_code == 404
    body = json.loads(response.get_body())
    assert body["field"] == "asset" and body["correlation_id"] == response.headers["x-correlation-id"]


def test_every_listed_file_exists() -> None:
    assert all((FOLDER / name).is_file() for name in controlroom.ASSETS)


def test_scripts_may_reach_the_app_and_the_sign_in_authority_only() -> None:
    policy = controlroom.page(AUTHORITY).headers["Content-Security-Policy"]
    assert "connect-src 'self' https://login.microsoftonline.com;" in policy
    assert "script-src" not in policy and "default-src 'self';" in policy
    assert "frame-src" not in policy and "form-action 'none'" in policy, "no frame of, no form to, the authority"


def test_a_local_authority_is_reached_with_its_port() -> None:
    """The local Entra ID stand-in listens on a loopback port: the origin keeps it."""
    policy = controlroom.security_headers("https://127.0.0.1:8444")["Content-Security-Policy"]
    assert "connect-src 'self' https://127.0.0.1:8444;" in policy


def test_the_page_and_its_files_need_no_key_they_hold_no_data() -> None:
    app = func.FunctionApp()
    app.register_functions(handler.bp)
    functions = {f.get_function_name(): json.loads(f.get_function_json()) for f in app.get_functions()}

    page, files = (next(b for b in functions[name]["bindings"] if b["type"] == "httpTrigger")
                   for name in ("ops_controlroom", "ops_controlroom_asset"))
    assert (page["route"], page["authLevel"], page["methods"]) == ("ops/controlroom", "ANONYMOUS", ["GET"])
    assert (files["route"], files["authLevel"], files["methods"]) == (
        "ops/controlroom/{asset}", "ANONYMOUS", ["GET"])


def test_the_function_app_registers_the_control_room() -> None:
    source = (FOLDER.parents[2] / "function_app.py").read_text()

    assert "app.register_functions(controlroom.bp)" in source


@pytest.mark.parametrize("name", ["app.js", "charts.js", "msal-browser.min.js"])
def test_the_scripts_parse(name: str) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed (the project installs Azurite with it)"
    result = subprocess.run([node, "--check", str(FOLDER / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
