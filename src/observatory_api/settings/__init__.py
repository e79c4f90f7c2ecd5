"""Typed, frozen settings: `api-config.yml` first, then environment variables.

The modules import one way: sections.py (the frozen Structs) <- the checks (redis_checks.py,
environment_checks.py with secret_rules.py, then checks.py) <- loading.py (file, environment,
overrides); errors.py and secret_rules.py import nothing of the app, masking.py only sections.py.
The names the rest of the app uses are re-exported here.
"""

from observatory_api.settings.checks import settings_problems, validate_settings
from observatory_api.settings.errors import ConfigError, ConfigErrors
from observatory_api.settings.loading import ENV_KEYS, SECRET_ENV, default_config_path, load_settings
from observatory_api.settings.masking import mask_url, masked
from observatory_api.settings.sections import (
    AuthSettings,
    CacheSettings,
    CorsSettings,
    DatabaseSettings,
    Environment,
    FeatureSettings,
    GraphQLSettings,
    IngestSettings,
    LoggingSettings,
    LogLevel,
    ObservabilitySettings,
    QuerySettings,
    RateLimitSettings,
    RedisSentinelSettings,
    RedisSettings,
    SecurityHeadersSettings,
    ServerSettings,
    Settings,
)

__all__ = [
    "ENV_KEYS",
    "SECRET_ENV",
    "AuthSettings",
    "CacheSettings",
    "ConfigError",
    "ConfigErrors",
    "CorsSettings",
    "DatabaseSettings",
    "Environment",
    "FeatureSettings",
    "GraphQLSettings",
    "IngestSettings",
    "LogLevel",
    "LoggingSettings",
    "ObservabilitySettings",
    "QuerySettings",
    "RateLimitSettings",
    "RedisSentinelSettings",
    "RedisSettings",
    "SecurityHeadersSettings",
    "ServerSettings",
    "Settings",
    "default_config_path",
    "load_settings",
    "mask_url",
    "masked",
    "settings_problems",
    "validate_settings",
]
