"""Typed, validated configuration: YAML files plus ``key=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from medssl.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are rejected, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``source: key: message (allowed: ...)``."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {key}: {message}")
    return "; ".join(lines)


def validate(model: type[ModelT], data: dict[str, Any], source: str = "config") -> ModelT:
    """Build ``model`` from ``data`` or raise a ``ConfigError`` naming each bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        allowed = ", ".join(sorted(model.model_fields))
        raise ConfigError(f"{format_validation_error(error, source)} (known keys: {allowed})") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; a clear error when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass the path to an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error.__class__.__name__}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML scalars) to a nested dict."""
    merged = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value, e.g. epochs=10")
        key, raw = item.split("=", 1)
        target = merged
        *parents, leaf = key.strip().split(".")
        for part in parents:
            target[part] = dict(target.get(part) or {})
            target = target[part]
        target[leaf] = yaml.safe_load(raw) if raw else None
    return merged


def load_config(model: type[ModelT], path: str | Path | None, overrides: list[str] | None = None) -> ModelT:
    """Load ``model`` from an optional YAML file and ``key=value`` overrides."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides or [])
    return validate(model, data, source=str(path) if path else "config")
