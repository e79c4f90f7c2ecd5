"""The fixed label values of the zero series follow what the code can produce."""

from __future__ import annotations

import re
from pathlib import Path

from observatory_api.metric_series import AUTH_FAILURE_REASONS, RATE_LIMIT_SCOPES

SRC = Path(__file__).parents[3] / "src" / "observatory_api"


def test_every_auth_failure_reason_has_a_zero_series() -> None:
    found: set[str] = set()
    for path in (SRC / "security").glob("*.py"):
        found |= set(re.findall(r'(?:AuthFailure|TokenError)\(\s*"([a-z_]+)"', path.read_text()))
    assert found and found <= set(AUTH_FAILURE_REASONS), found - set(AUTH_FAILURE_REASONS)


def test_every_rate_limit_scope_has_a_zero_series() -> None:
    scopes = set(re.findall(r'Bucket\(\s*"([a-z_]+)"', (SRC / "security" / "rate_limit.py").read_text()))
    assert scopes == set(RATE_LIMIT_SCOPES)
