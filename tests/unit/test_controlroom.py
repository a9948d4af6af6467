"""The control room's page and files as the function app serves them: security headers, no inline
script, nothing from the internet, a fixed list of files, the role check, and its two functions."""

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

FOLDER = Path(controlroom.__file__).parent
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
    assert response.headers["Referrer-Policy"] == "no-referrer", "the page's URL holds the key"
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
    for path in FOLDER.iterdir():
        if path.suffix in (".html", ".js", ".css", ".svg"):
            text = path.read_text().replace(SVG_NAMESPACE, "")
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path.name
            assert "@import" not in text and "url(" not in text, path.name


def test_the_script_never_builds_markup_from_text_or_evaluates_code() -> None:
    for name in ("app.js", "charts.js"):
        script = (FOLDER / name).read_text()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                      'setAttribute("style"'):
            assert risky not in script, f"{name} uses {risky}"


def test_the_script_sends_the_key_as_a_header_only() -> None:
    script = (FOLDER / "app.js").read_text()

    assert '"x-functions-key": KEY' in script
    assert not re.search(r"code=\$\{?KEY|[?&]code=\"?\s*\+", script), "the key must not go into a URL"


@pytest.mark.parametrize("name", ["../__init__.py", "index.html", "__init__.py", "missing.js", "", "a" * 300])
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


@pytest.mark.parametrize("name", ["app.js", "charts.js"])
def test_the_scripts_parse(name: str) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed (the project installs Azurite with it)"
    result = subprocess.run([node, "--check", str(FOLDER / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
