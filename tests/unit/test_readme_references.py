"""The README and the pages under docs/ name tests and modules as evidence (the security table,
the status page): each path they name must exist, so a renamed test cannot leave the
documentation pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_and_source_path_the_documentation_names_exists() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    named = set(
        re.findall(r"`((?:tests|bench|src/observatory_api|deploy|migrations)/[\w./-]+\.(?:py|sql|yml|md))`", text)
    )
    assert named, "the documentation names no paths: the pattern above is out of date"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []
