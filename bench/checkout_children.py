"""In-process measurements of two checkouts, each in a child process of its own, alternated round
by round (the order flips every round, so neither always runs on the warmer machine).

The child is the calling script run again with `--child` and the given arguments, on the checkout's
`src/` (first on PYTHONPATH) and interpreter; it prints its figures as one JSON object of case ->
number on its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# A checkout's interpreter and root folder, by name ("ours", "base").
Checkouts = dict[str, tuple[str, Path]]


def with_base(root: Path, base: Path | None) -> Checkouts:
    """This tree, and `base` on its own .venv when it has one, else on this interpreter."""
    checkouts: Checkouts = {"ours": (sys.executable, root)}
    if base is not None:
        python = base.resolve() / ".venv" / "bin" / "python"
        checkouts["base"] = (str(python) if python.exists() else sys.executable, base.resolve())
    return checkouts


def alternated(
    script: str, checkouts: Checkouts, rounds: int, child_args: Sequence[str], *, also_on_path: Path | None = None
) -> dict[str, dict[str, list[float]]]:
    """Each checkout's figures, by case, one sample a round."""
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    for round_number in range(rounds):
        for name in list(checkouts) if round_number % 2 == 0 else list(checkouts)[::-1]:
            python, checkout = checkouts[name]
            path = str(checkout / "src") + (f"{os.pathsep}{also_on_path}" if also_on_path else "")
            command = [python, str(Path(script).resolve()), "--child", *child_args]
            env = {**os.environ, "PYTHONPATH": path}
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            for case, value in json.loads(output.strip().splitlines()[-1]).items():
                samples[name].setdefault(case, []).append(value)
    return samples
