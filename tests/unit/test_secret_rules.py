"""The secret rule: random values always pass; samples, placeholders, repeats and sequences never do."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from observatory_api.settings.secret_rules import (
    DEVELOPMENT_JWT_SECRET,
    DEVELOPMENT_SECRET_KEY,
    MIN_GUESSES_LOG10,
    guesses_log10,
    is_sample,
    secret_weakness,
)

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    *(ROOT / name for name in ("README.md", ".env.example", "api-config.yml", "compose.yml")),
    *sorted((ROOT / "docs").glob("*.md")),
]


@pytest.mark.parametrize(
    ("name", "generate", "samples"),
    [
        ("secrets.token_urlsafe(32)", lambda: secrets.token_urlsafe(32), 100),
        ("openssl rand -base64 48", lambda: base64.b64encode(os.urandom(48)).decode(), 50),
        ("secrets.token_hex(32)", lambda: secrets.token_hex(32), 20),
    ],
)
def test_random_secrets_always_pass(name: str, generate, samples: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(samples):
        assert secret_weakness(generate()) is None, name
    # Not by a hair: even the weakest of a few keeps a margin of 10^15 guesses over the threshold.
    assert min(guesses_log10(generate()) for _ in range(10)) >= MIN_GUESSES_LOG10 + 15, name


def test_the_openssl_command_the_readme_gives_passes() -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed for this test (docs/security.md tells users to run it)")
    for _ in range(5):
        secret = subprocess.run([openssl, "rand", "-base64", "48"], capture_output=True, text=True, check=True)
        assert secret_weakness(secret.stdout.strip()) is None


@pytest.mark.parametrize(
    "secret",
    [
        DEVELOPMENT_JWT_SECRET,
        DEVELOPMENT_SECRET_KEY,
        DEVELOPMENT_JWT_SECRET.upper(),
        "changeme",
        "changeme-changeme-changeme-changeme",
        "CHANGEME" + secrets.token_urlsafe(32),  # a placeholder with something appended
        "please-replace-me-" + secrets.token_hex(16),
        "a" * 64,
        "abcdefghij" * 4,
        "k3y-abcdefghijklmnopqrstuvwxyz0123456789",
        "password1234567890password1234567890",
        "Summer2024!Summer2024!Summer2024!!",
        "qwertyuiopasdfghjklzxcvbnm1234567890",
        "test-jwt-secret-0123456789abcdefghijklmnop",
        secrets.token_urlsafe(12),  # random but too short
        (secrets.token_urlsafe(12)[:16]) * 3,  # random, repeated
        "0101010101" * 4,
    ],
)
def test_samples_placeholders_and_patterns_are_refused(secret: str) -> None:
    reason = secret_weakness(secret)
    assert reason is not None
    assert secret not in reason and "openssl rand -base64 48" in reason


def _sample_values(text: str) -> set[str]:
    """Values the documents show for secrets: NAME=value for *SECRET*/*PASSWORD* names, and
    passwords inside URLs; compose interpolations (`${...}`) and variable names are not samples."""
    assigned = [
        value
        for name, value in re.findall(r"\b([A-Z_]*(?:SECRET|PASSWORD)[A-Z_]*)=([^\s\"'`]+)", text)
        if not name.endswith("_FILE")  # NAME_FILE=/run/secrets/name holds a path
    ]
    in_urls = re.findall(r"://[^:/@\s]*:([^@\s/]+)@", text)
    return {value for value in assigned + in_urls if not value.startswith("$") and not value.isupper()}


def test_every_sample_secret_in_the_documents_is_refused() -> None:
    found = {value for document in DOCUMENTS for value in _sample_values(document.read_text(encoding="utf-8"))}
    # The scan finds what the documents show today (if it finds nothing, it is broken).
    assert {"changeme", "secret", "pass", "..."} <= found
    for value in found:
        assert is_sample(value), value
        assert secret_weakness(value) is not None, value
