"""`observatory-api models set-price|prices`, run as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.test_cli import run_cli


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, str], DatabaseSettings]:
    """The environment that points the CLI at an empty database, and the settings of the same database."""
    if request.param == "sqlite":
        path = tmp_path / "observatory.db"
        config = tmp_path / "api-config.yml"
        config.write_text(f"database:\n  sqlite_path: {path}\n")
        return {"OBSERVATORY_CONFIG": str(config)}, DatabaseSettings(sqlite_path=str(path))
    url = request.getfixturevalue("pg_empty_database")
    return {"DATABASE_URL": url}, DatabaseSettings(url=url)


def test_set_price_records_a_change_the_api_then_shows(
    tmp_path: Path, database_env: tuple[dict[str, str], DatabaseSettings]
) -> None:
    env, database = database_env
    changed = run_cli(
        "models",
        "set-price",
        "openai/gpt-4o",
        "--input",
        "3.5",
        "--reasoning",
        "12",
        "--effective-from",
        "2026-02-01T00:00:00+01:00",
        cwd=tmp_path,
        env=env,
    )
    assert changed.returncode == 0, changed.stderr
    assert "recorded a price of openai/gpt-4o from 2026-01-31T23:00:00+00:00" in changed.stdout
    # Prices left out keep their value; `none` clears an optional one.
    assert "input 3.5, output 10.0, cache-read 1.25" in changed.stdout
    cleared = run_cli(
        "models",
        "set-price",
        "openai/gpt-4o",
        "--cache-read",
        "none",
        "--effective-from",
        "2026-01-31T23:00:00Z",
        cwd=tmp_path,
        env=env,
    )
    assert cleared.returncode == 0, cleared.stderr
    assert "replaced the price" in cleared.stdout and "cache-read like input" in cleared.stdout

    added = run_cli(
        "models",
        "set-price",
        "acme/falcon-9",
        "--input",
        "1",
        "--output",
        "4",
        "--display-name",
        "Falcon 9",
        "--context-window",
        "32000",
        "--effective-from",
        "2025-06-01",
        cwd=tmp_path,
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert "added to the catalogue" in added.stdout

    listed = run_cli("models", "prices", "openai/gpt-4o", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "1970-01-01T00:00:00+00:00",
        "2026-01-31T23:00:00+00:00",
    ]

    settings = make_settings(database)
    with TestClient(create_app(settings)) as client:
        client.headers.update(auth_headers(settings))
        detail = client.get("/api/v1/models/openai/gpt-4o").json()
        falcon = client.get("/api/v1/models/acme/falcon-9").json()
    latest = detail["price_history"][-1]
    assert (latest["input_per_mtok"], latest["reasoning_per_mtok"], latest["cache_read_per_mtok"]) == (3.5, 12.0, None)
    assert detail["pricing"]["input_per_mtok"] == 3.5
    assert (falcon["display_name"], falcon["context_window"], falcon["pricing"]["output_per_mtok"]) == (
        "Falcon 9",
        32000,
        4.0,
    )


def test_set_price_refuses_bad_input(tmp_path: Path) -> None:
    def set_price(*args: str) -> tuple[int, str]:
        result = run_cli("models", "set-price", *args, cwd=tmp_path)
        return result.returncode, result.stderr

    assert set_price("openai/gpt-4o", "--input", "-1", "--effective-from", "now") == (
        2,
        "observatory-api: --input: must be a finite price of 0 or more\n",
    )
    code, error = set_price("openai/gpt-4o", "--input", "nan", "--effective-from", "now")
    assert code == 2 and "finite" in error
    code, error = set_price("openai/gpt-4o", "--output", "none", "--effective-from", "now")
    assert code == 2 and "not a number" in error  # input and output prices cannot be cleared
    code, error = set_price("openai/gpt-4o", "--effective-from", "now")
    assert code == 2 and "at least one price" in error
    code, error = set_price("openai/gpt-4o", "--input", "1", "--effective-from", "yesterday")
    assert code == 2 and "RFC 3339" in error
    code, error = set_price("gpt-4o", "--input", "1", "--effective-from", "now")
    assert code == 2 and "provider/name" in error
    # An unknown model needs a display name, and then an input and an output price.
    code, error = set_price("acme/x", "--input", "1", "--effective-from", "now")
    assert code == 1 and "give a display name" in error
    code, error = set_price("acme/x", "--input", "1", "--display-name", "X", "--effective-from", "now")
    assert code == 1 and "set output_price_per_mtok" in error
