"""The README is the front door and docs/ holds the reference: every relative link in README.md and
docs/*.md reaches a file of the repo, and every `#anchor` a heading of the page it names (GitHub's
slugs). Links inside HTML comments (the README's pending list) are not links yet. The README stays
short enough to read before trying the app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
COMMENT = re.compile(r"<!--.*?-->", re.S)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(text: str) -> list[str]:
    """The targets of the page's Markdown links and images, outside comments and code blocks."""
    return LINK.findall(FENCE.sub("", COMMENT.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:: not this repo's
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or ROOT not in file.parents:
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_slugs_are_github_s() -> None:
    assert slug(" Under `func start`") == "under-func-start"
    assert slug("The admin API and `opsctl`") == "the-admin-api-and-opsctl"
    assert slug("Dependencies, and why each is there") == "dependencies-and-why-each-is-there"


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    assert links("[a](x.md) <!-- [b](pending.md) --> ![c](d.png)\n```\n[e](f.md)\n```\n") == ["x.md", "d.png"]


def test_the_readme_is_a_front_door() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for heading in ("## Quick start", "## By hand", "## Documentation"):
        assert heading in text
    assert "[By hand](#by-hand)" in text.split("## By hand")[0], "the quick start points to the by-hand path"
