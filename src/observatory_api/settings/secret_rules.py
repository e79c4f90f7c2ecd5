"""When a secret is fit to sign tokens and key API-key hashes, and the public samples it must never be.

The rule (docs/security.md, "Production checklist"): at least 32 characters, at least 10 distinct characters,
no public sample or placeholder, and at least 10^24 guesses (about 80 bits) by zxcvbn's estimate,
which sees through repeats ("changeme-changeme-..."), sequences ("abcdef...0123"), keyboard walks
and dictionary words. Random values pass with a wide margin: `secrets.token_urlsafe(32)` scores
about 10^42 and `openssl rand -base64 48` about 10^63, and both have 10 distinct characters or more
except with a probability below 10^-26; 64 hex characters (`secrets.token_hex(32)`) score about 10^60.

Imports nothing of the app: settings validation and the security modules both read it.
"""

from __future__ import annotations

import re

MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 10
MIN_GUESSES_LOG10 = 24
# zxcvbn's matching grows quadratically with the length (0.9 s for 256 characters): the first 100
# characters decide, which is plenty for a secret at least 32 long.
_ESTIMATED_PREFIX = 100

# Used only when no JWT_SECRET / SECRET_KEY is set, in development or test on a loopback address;
# they are in the public source, so every other case refuses them.
DEVELOPMENT_JWT_SECRET = "observatory-development-only-jwt-secret-do-not-deploy"  # noqa: S105
DEVELOPMENT_SECRET_KEY = "observatory-development-only-secret-key-do-not-deploy"  # noqa: S105

# Values the repository shows as examples (README, docs/, .env.example, api-config.yml, compose.yml) or
# that people type as stand-ins. Compared case-insensitively; tests/unit/test_secret_rules.py
# reads those files and fails on a sample value this module would accept.
SAMPLE_SECRETS = frozenset(
    {
        DEVELOPMENT_JWT_SECRET,
        DEVELOPMENT_SECRET_KEY,
        "changeme",
        "change-me",
        "secret",
        "password",
        "pass",
        "dev",
        "development",
        "test",
        "...",
    }
)
# A value containing one of these was copied from a template and never replaced. Each is 7
# characters or more, so a random secret contains one by chance with a probability below 10^-9.
PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "replaceme",
    "replace-me",
    "replace_me",
    "placeholder",
    "development-only",
    "do-not-deploy",
    "your-secret",
    "your_secret",
)
_MARKER_RE = re.compile("|".join(re.escape(marker) for marker in PLACEHOLDER_MARKERS), re.IGNORECASE)


def is_sample(value: str) -> bool:
    """A public sample or a template placeholder: never a secret."""
    return value.strip().lower() in SAMPLE_SECRETS or _MARKER_RE.search(value) is not None


def secret_weakness(secret: str) -> str | None:
    """Why `secret` must not sign tokens or key hashes (never quoting it), or None when it may."""
    if is_sample(secret):
        return "is a public sample or placeholder value; generate one with `openssl rand -base64 48`"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"has fewer than {MIN_SECRET_LENGTH} characters; use random ones (`openssl rand -base64 48`)"
    if len(set(secret)) < MIN_DISTINCT_CHARACTERS:
        return (
            f"has fewer than {MIN_DISTINCT_CHARACTERS} distinct characters; "
            "use random characters (`openssl rand -base64 48`)"
        )
    if guesses_log10(secret) < MIN_GUESSES_LOG10:
        return (
            f"is guessable (repeats, sequences or words; under 10^{MIN_GUESSES_LOG10} guesses); "
            "use random characters (`openssl rand -base64 48`)"
        )
    return None


def guesses_log10(secret: str) -> float:
    """zxcvbn's estimate of the guesses needed, as a power of ten."""
    from zxcvbn import zxcvbn  # 55 ms to import: only where a secret is checked

    return float(zxcvbn(secret[:_ESTIMATED_PREFIX], max_length=_ESTIMATED_PREFIX)["guesses_log10"])
