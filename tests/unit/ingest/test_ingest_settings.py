"""The `ingest` section's work limits: defaults, environment overrides, refused values."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory_api.ingest.controller import decode_limits
from observatory_api.settings import ConfigError, load_settings

REPO_CONFIG = Path(__file__).resolve().parents[3] / "api-config.yml"


def test_the_committed_file_holds_the_defaults() -> None:
    ingest = load_settings(REPO_CONFIG, environ={}).ingest
    assert ingest.max_decompressed_bytes is None  # server.max_body_bytes
    limits = decode_limits(load_settings(REPO_CONFIG, environ={}))
    assert (limits.max_resources, limits.max_scopes, limits.max_records) == (1_000, 10_000, 50_000)
    assert limits.max_values_per_record == 100_000


def test_environment_variables_override_each_limit() -> None:
    environ = {
        "INGEST_MAX_DECOMPRESSED_BYTES": "2000000",
        "INGEST_MAX_RESOURCES_PER_REQUEST": "5",
        "INGEST_MAX_SCOPES_PER_REQUEST": "6",
        "INGEST_MAX_RECORDS_PER_REQUEST": "7",
        "INGEST_MAX_VALUES_PER_RECORD": "8",
    }
    settings = load_settings(REPO_CONFIG, environ=environ)
    assert settings.ingest.max_decompressed_bytes == 2_000_000
    limits = decode_limits(settings)
    assert (limits.max_resources, limits.max_scopes, limits.max_records, limits.max_values_per_record) == (5, 6, 7, 8)


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("INGEST_MAX_DECOMPRESSED_BYTES", "ingest.max_decompressed_bytes"),
        ("INGEST_MAX_RECORDS_PER_REQUEST", "ingest.max_records_per_request"),
        ("INGEST_MAX_VALUES_PER_RECORD", "ingest.max_values_per_record"),
    ],
)
def test_a_limit_that_is_not_positive_stops_start_up_naming_it(variable: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(REPO_CONFIG, environ={variable: "0"})
    assert refused.value.key == key
