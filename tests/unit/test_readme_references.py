"""The README names tests and modules as evidence (the security table, the status table): each
path it names must exist, so a renamed test cannot leave the README pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_and_source_path_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(
        re.findall(r"`((?:tests|bench|src/observatory_api|deploy|migrations)/[\w./-]+\.(?:py|sql|yml|md))`", readme)
    )
    assert named, "the README names no paths: the pattern above is out of date"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []
