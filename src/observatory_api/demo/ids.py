"""Random identifiers in OpenTelemetry's form, drawn from the generator's seeded RNG.

Every id is also XORed with a salt drawn from the whole generation (seed, end time, days): two
generations that differ only in their end time (`serve --demo` yesterday, `seed` today) draw the
same random numbers, and without the salt would write the same trace and span ids at other times.
XOR with one salt is a bijection, so ids stay as unique within a generation as the draws are.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime


def generation_salt(*, seed: int, end: datetime, days: int) -> int:
    """256 bits that differ between any two generations of different seed, end time or days."""
    text = f"{seed}|{end.astimezone(UTC).isoformat()}|{days}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def hex_id(rng: random.Random, bits: int, salt: int = 0) -> str:
    """A lowercase hex id of bits/4 characters, never all zeros (invalid in OpenTelemetry)."""
    return f"{(rng.getrandbits(bits) ^ (salt & ((1 << bits) - 1))) or 1:0{bits // 4}x}"
