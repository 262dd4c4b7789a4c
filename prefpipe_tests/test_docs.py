"""The README and the docs/ pages hold together: every relative link points at a file that exists
(and at a heading of it, when it names one), and the README's first two bash blocks are the two
commands a newcomer pastes: the demo run, then the test suite, which CI runs as written (.ci/run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from prefpipe_tests.conftest import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
DEMO_COMMAND = ('python3 -m venv .venv && .venv/bin/pip install -e . && DAGSTER_HOME="$PWD/.dagster_home" '
                ".venv/bin/prefpipe run --batch demo")
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e '.[test,team]' && .venv/bin/python -m pytest"


def tokens(page: Path) -> list:
    return MarkdownIt("commonmark").enable("table").parse(page.read_text(encoding="utf-8"))


def anchor(heading: str, taken: dict[str, int]) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, and a
    -1, -2, ... suffix for a repeated one."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    n = taken.get(slug, 0)
    taken[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"


def anchors(page: Path) -> set[str]:
    found = tokens(page)
    taken: dict[str, int] = {}
    return {anchor("".join(c.content for c in found[i + 1].children if c.type in ("text", "code_inline")), taken)
            for i, t in enumerate(found) if t.type == "heading_open"}


def links(page: Path) -> list[str]:
    """Every link and image target on the page (code blocks and code spans are not links)."""
    out = []
    for t in tokens(page):
        for child in t.children or []:
            if child.type == "link_open":
                out.append(child.attrs["href"])
            elif child.type == "image":
                out.append(child.attrs["src"])
    return out


def broken_links(page: Path) -> list[str]:
    broken = []
    for href in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):  # https:, mailto: ...: not a file of the project
            continue
        path, _, fragment = href.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{href} (no file {target.relative_to(PROJECT_ROOT) if target.is_relative_to(PROJECT_ROOT) else target})")
        elif fragment and (target.suffix != ".md" or fragment not in anchors(target)):
            broken.append(f"{href} (no heading #{fragment} in {target.name})")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_resolves(page: Path):
    assert not broken_links(page), f"{page.name}: broken links: {broken_links(page)}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(PROJECT_ROOT / href.partition("#")[0]).resolve() for href in links(PROJECT_ROOT / "README.md")}
    assert not [p.name for p in PAGES[1:] if p.resolve() not in linked]


def test_the_first_two_bash_blocks_are_the_demo_and_the_test_commands():
    blocks = [t.content.strip() for t in tokens(PROJECT_ROOT / "README.md") if t.type == "fence" and t.info.strip() == "bash"]
    assert blocks[:2] == [DEMO_COMMAND, TEST_COMMAND]


def test_the_link_checks_catch_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    monkeypatch.setattr("prefpipe_tests.test_docs.PROJECT_ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# A page: its *first* heading\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-page-its-first-heading) [ok](other.md#twice-1) [web](https://example.com) "
                    "[gone](missing.md) [no heading](other.md#nowhere) `[code](missing.md)`\n\n"
                    "```\n[block](missing.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["missing.md (no file missing.md)", "other.md#nowhere (no heading #nowhere in other.md)"]
