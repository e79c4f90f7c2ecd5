"""The revocation settings: checked at start-up, and the removed fail-open switch named, not ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory_api.settings import ConfigError, Settings, load_settings


def test_defaults_refresh_every_second_and_refuse_after_ten() -> None:
    auth = Settings().auth
    assert (auth.revocation_refresh_seconds, auth.revocation_max_staleness_seconds) == (1.0, 10.0)


def test_the_removed_fail_open_switch_stops_start_up_with_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "api-config.yml"
    config.write_text("auth:\n  revocation_fail_open: true\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.key == "auth.revocation_fail_open"
    assert "removed" in caught.value.reason and "fail closed" in caught.value.reason


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"auth.revocation_refresh_seconds": 0}, "auth.revocation_refresh_seconds"),
        ({"auth.revocation_refresh_seconds": 120}, "auth.revocation_refresh_seconds"),
        ({"auth.revocation_max_staleness_seconds": 1.5}, "auth.revocation_max_staleness_seconds"),
        (
            {"auth.revocation_refresh_seconds": 5, "auth.revocation_max_staleness_seconds": 9},
            "auth.revocation_max_staleness_seconds",
        ),
    ],
)
def test_a_staleness_shorter_than_two_refreshes_is_refused(overrides: dict[str, float], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={}, overrides=overrides)
    assert caught.value.key == key
