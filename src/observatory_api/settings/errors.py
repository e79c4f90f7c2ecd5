"""Configuration errors: one problem names its key and reason; several are reported together.

`conversion_problems` turns msgspec's first type error into every type error of the document
(msgspec stops at the first), each naming the environment variable it came from and, for enums
and booleans, the accepted values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
import msgspec.inspect


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"invalid configuration: {key}: {reason}")


class ConfigErrors(ConfigError):
    """Several problems, reported together (one line each) so that one run shows them all."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        self.key, self.reason = problems[0].key, problems[0].reason
        lines = "".join(f"\n  {problem.key}: {problem.reason}" for problem in problems)
        ValueError.__init__(self, f"invalid configuration, {len(problems)} problems:{lines}")


def config_error(problems: list[ConfigError]) -> ConfigError:
    """What to raise for one or more problems: the problem itself, or all of them."""
    return problems[0] if len(problems) == 1 else ConfigErrors(problems)


def conversion_problems(
    first: msgspec.ValidationError, data: dict[str, Any], target: type, sources: Mapping[str, str]
) -> list[ConfigError]:
    """Every type error of `data` as `target` (`first` is the one msgspec stopped at): each value
    is converted on its own, the other keys keeping their defaults."""
    found = [error for part in _single_values(data) if (error := _conversion_error(part, target)) is not None]
    return [_config_error_from(error, target, sources) for error in found or [first]]


def _single_values(data: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    # Sections and their subsections (redis.sentinel) are split down to single values.
    parts: list[dict[str, Any]] = []
    for name, value in data.items():
        if isinstance(value, dict) and value and depth < 2:
            parts += [{name: part} for part in _single_values(value, depth + 1)]
        else:
            parts.append({name: value})
    return parts


def _conversion_error(part: dict[str, Any], target: type) -> msgspec.ValidationError | None:
    try:
        msgspec.convert(part, target, strict=False)
    except msgspec.ValidationError as exc:
        return exc
    return None


_PATH_RE = re.compile(r"at `\$\.?(?P<path>[^`]*)`")


def _config_error_from(exc: msgspec.ValidationError, target: type, sources: Mapping[str, str]) -> ConfigError:
    message = str(exc)
    match = _PATH_RE.search(message)
    path = match.group("path") if match else ""
    key = re.sub(r"\[\d+\]$", "", path) or "configuration"
    reason = _PATH_RE.sub("", message).strip(" -") or "invalid value"
    if (accepted := _accepted_values(target, path)) is not None:
        reason = f"{reason}; {accepted}"
    if key in sources:
        key = f"{key} ({sources[key]})"
    return ConfigError(key, reason)


def _accepted_values(target: type, path: str) -> str | None:
    """What an enum or boolean setting accepts, read from its declared type (one vocabulary)."""
    info: Any = msgspec.inspect.type_info(target)
    for part in re.findall(r"[^.\[\]]+|\[[^\]]*\]", path):
        info = _without_none(info)
        if isinstance(info, msgspec.inspect.StructType) and not part.startswith("["):
            info = next((field.type for field in info.fields if field.name == part), None)
        elif isinstance(info, msgspec.inspect.DictType) and part == "[...]":
            info = info.value_type
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)) and part.startswith("["):
            info = info.item_type
        else:
            return None
    info = _without_none(info)
    if isinstance(info, msgspec.inspect.LiteralType):
        return "expected one of " + ", ".join(str(value) for value in info.values)
    if isinstance(info, msgspec.inspect.BoolType):
        return "expected true or false (or 1 or 0)"
    return None


def _without_none(info: Any) -> Any:
    if isinstance(info, msgspec.inspect.UnionType):
        types = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return types[0] if len(types) == 1 else info
    return info
