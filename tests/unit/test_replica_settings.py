"""`database.replica_urls` and its bounds: parsed from DB_REPLICA_URLS, checked, never shown with a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory_api.settings import load_settings, masked
from observatory_api.settings.errors import ConfigError

PRIMARY = "postgresql://owner:owner-secret@db.internal:5432/observatory"


def test_replica_urls_come_comma_separated_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "DATABASE_URL": PRIMARY,
            "DB_REPLICA_URLS": " postgresql://reader:replica-secret@r1:5433/observatory, postgresql://r2/observatory ,",
        }
    )
    assert settings.database.replica_urls == (
        "postgresql://reader:replica-secret@r1:5433/observatory",
        "postgresql://r2/observatory",
    )
    assert settings.database.max_replica_lag_seconds == 10
    assert settings.database.replica_check_interval_seconds == 2


def test_no_replicas_by_default() -> None:
    assert load_settings(environ={}).database.replica_urls == ()


def test_the_effective_configuration_masks_replica_passwords() -> None:
    settings = load_settings(
        environ={"DATABASE_URL": PRIMARY, "DB_REPLICA_URLS": "postgresql://u:replica-secret@r1/db"}
    )
    shown = masked(settings)["database"]
    assert shown["replica_urls"] == ["postgresql://u:***@r1/db"]
    assert "replica-secret" not in repr(shown)


def test_a_replica_url_that_is_not_postgresql_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"DATABASE_URL": PRIMARY, "DB_REPLICA_URLS": "postgresql://r1/db,mysql://u:pw-123@r2/db"})
    message = str(raised.value)
    assert "database.replica_urls (DB_REPLICA_URLS)[1]" in message
    assert "pw-123" not in message


def test_replicas_need_a_postgresql_primary() -> None:
    with pytest.raises(ConfigError, match=r"replicas need a PostgreSQL primary"):
        load_settings(environ={"DB_REPLICA_URLS": "postgresql://r1/db"})


@pytest.mark.parametrize("key", ["max_replica_lag_seconds", "replica_check_interval_seconds"])
def test_lag_bound_and_check_interval_must_be_positive(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"database\.{key}: must be positive"):
        load_settings(environ={"DATABASE_URL": PRIMARY}, overrides={f"database.{key}": 0})


def test_the_replica_url_file_form_works_like_the_other_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "replicas"
    secret.write_text("postgresql://u:file-secret@r1/db\n")
    settings = load_settings(environ={"DATABASE_URL": PRIMARY, "DB_REPLICA_URLS_FILE": str(secret)})
    assert settings.database.replica_urls == ("postgresql://u:file-secret@r1/db",)
