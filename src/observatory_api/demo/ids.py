"""Random identifiers in OpenTelemetry's form, drawn from the generator's seeded RNG."""

from __future__ import annotations

import random


def hex_id(rng: random.Random, bits: int) -> str:
    """A lowercase hex id of bits/4 characters, never all zeros (invalid in OpenTelemetry)."""
    return f"{rng.getrandbits(bits) or 1:0{bits // 4}x}"
