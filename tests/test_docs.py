"""The README stays short and every relative link in the documentation resolves.

README.md is the entry page (at most :data:`README_MAX_LINES` lines); the details live in
``docs/``. A relative Markdown link (``[text](path)`` or ``[text](path#anchor)``) in
README.md or ``docs/*.md`` must point to a file or folder that exists, relative to the page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 150
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# inline links, outside code spans: [text](target) with an optional "title"
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`[^`]*`")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def _links(path: Path) -> list[tuple[int, str]]:
    """``(line number, target)`` of every inline link outside code blocks and spans."""
    out = []
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            out.append((number, match.group(1)))
    return out


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move details to docs/")


def test_the_pages_have_links():
    assert len(PAGES) > 1
    assert _links(REPO / "README.md"), "README.md links no page"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_existing_files(page):
    broken = []
    for number, target in _links(page):
        if EXTERNAL.match(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not (page.parent / path).exists():
            broken.append(f"{page.relative_to(REPO)}:{number}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.split("#", 1)[0]).resolve() for _, t in _links(REPO / "README.md")
              if not EXTERNAL.match(t)}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


def test_link_pattern_finds_links_and_skips_code(tmp_path):
    sample = tmp_path / "sample.md"
    sample.write_text("see [a](docs/a.md) and `[b](b.md)`\n```\n[c](c.md)\n```\n"
                      "[d](https://example.org) [e](f.md#x)\n", encoding="utf-8")
    assert [t for _, t in _links(sample)] == ["docs/a.md", "https://example.org", "f.md#x"]
