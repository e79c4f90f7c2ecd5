"""Every relative link of the README and of the pages under docs/ points at a file that exists and,
when it names an anchor, at a heading of that file (GitHub's anchors); so do the documentation
references the service itself hands out (the landing page, error messages, the OpenAPI text)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from observatory_api.landing import README_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"(?<!!)\[(?:[^\]`]|`[^`]*`)+\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)
# A page and optional anchor named in the service's own strings, e.g. docs/api.md#search.
SOURCE_REFERENCE = re.compile(r"\b((?:README|docs/[\w-]+)\.md)(#[\w-]+)?")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, with the -1, -2 suffixes GitHub gives repeated headings."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        anchor = github_anchor(heading)
        found.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
        seen[anchor] += 1
    return found


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`(?!\])", "", text)  # inline code shows text, not links (a link's `text` stays)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def broken(page: Path, target: str) -> str | None:
    """Why `target`, written in `page`, leads nowhere; None when it leads to what it names."""
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
        return f"{path} does not exist"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"{file.relative_to(ROOT)} has no heading #{anchor}"
    return None


def test_the_anchors_follow_github() -> None:
    assert (
        github_anchor("OTLP ingest (`/v1/traces`, `/v1/logs`, gRPC on 4317)")
        == "otlp-ingest-v1traces-v1logs-grpc-on-4317"
    )
    assert github_anchor("What is accepted, and how") == "what-is-accepted-and-how"
    assert github_anchor("Tests on TimescaleDB") == "tests-on-timescaledb"


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    problems = [f"{target}: {why}" for target in relative_links(page) if (why := broken(page, target))]
    assert problems == []


def test_the_readme_links_every_page_and_the_pages_link_each_other() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(ROOT / "README.md")}
    assert {page.resolve() for page in PAGES[1:]} <= linked, "a page under docs/ is missing from the README's list"
    between_pages = [target for page in PAGES[1:] for target in relative_links(page) if ".md#" in target]
    assert len(between_pages) >= 20, "the pages lost their links to each other: is LINK still matching?"


def test_the_documentation_the_service_names_exists() -> None:
    sources = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "src").rglob("*.py"))
    sources += "\n" + "\n".join(README_SECTIONS.values())
    named = set(SOURCE_REFERENCE.findall(sources))
    assert ("docs/configuration.md", "#running-against-postgresql-and-redis") in named
    problems = [
        f"{path}{anchor}: {why}" for path, anchor in named if (why := broken(ROOT / "README.md", path + anchor))
    ]
    assert problems == []
