"""The attribute mapping table of docs/ingest.md names exactly the keys the mapping reads, column by column."""

from __future__ import annotations

import re
from pathlib import Path

from observatory_api.ingest.mapping import OPENLLMETRY_INDEXED, RESOURCE_ATTRIBUTES, SPAN_ATTRIBUTES
from observatory_api.ingest.span_events import COMPLETION_START_KEYS, FIRST_TOKEN_EVENTS, SECOND_KEYS

INGEST_DOC = Path(__file__).resolve().parents[3] / "docs" / "ingest.md"
HEADER = "| column | OpenInference | GenAI | OpenLLMetry (Traceloop) | OpenLIT | Langfuse | other |"


def readme_table() -> dict[str, set[str]]:
    """Column -> the keys (in backticks) the table names for it, over every instrumentation."""
    lines = INGEST_DOC.read_text().splitlines()
    start = lines.index(HEADER) + 2
    table: dict[str, set[str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        column = re.split(r"[ ,]", cells[0])[0]
        assert column not in table, f"{column} has two rows"
        table[column] = {key for cell in cells[1:] for key in re.findall(r"`([^`]+)`", cell)}
    return table


def expected() -> dict[str, set[str]]:
    keys = {column: set(names) for column, names in SPAN_ATTRIBUTES.items()}
    for column, names in RESOURCE_ATTRIBUTES.items():
        keys.setdefault(column, set()).update(names)
    keys["time_to_first_token_ms"] |= {*SECOND_KEYS, *COMPLETION_START_KEYS, *FIRST_TOKEN_EVENTS}
    for column, prefix in OPENLLMETRY_INDEXED.items():
        keys[column].add(f"{prefix}N.*")
    keys["status"] = set()
    return keys


def test_the_readme_table_names_every_key_read_and_no_other() -> None:
    found, wanted = readme_table(), expected()
    assert set(found) == set(wanted), "a column is missing from, or extra in, the mapping table of docs/ingest.md"
    for column, keys in wanted.items():
        assert found[column] == keys, (
            f"{column}: missing from docs/ingest.md {sorted(keys - found[column])}, "
            f"not read by the mapping {sorted(found[column] - keys)}"
        )
