"""Typed, validated configuration: YAML files plus ``key=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from medssl.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def _takes_int(annotation: Any) -> bool:
    """Whether a field is a number that ``true``/``false`` must not silently become (``int``, ``int | None``)."""
    return annotation in (int, float) or (
        get_origin(annotation) in (Union, UnionType) and any(a in (int, float) for a in get_args(annotation))
    )


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are rejected, values validated on assignment, and a
    ``true``/``false`` given for a number is refused (pydantic would read ``epochs: true`` as 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and _takes_int(field.annotation):
            raise ValueError(f"expected a number, not {str(value).lower()}")
        return value


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
        raise ConfigError(f"{path}: {_yaml_problem(error)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong, in words: tags such as ``!!python/object`` are refused, anything else is syntax."""
    if isinstance(error, yaml.constructor.ConstructorError) and "tag" in str(error.problem or ""):
        return "YAML tags such as !!python/... are refused (medssl reads plain values only); remove the tag"
    return f"not valid YAML ({error.__class__.__name__}); fix the syntax"


def _override_value(item: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as error:
        raise ConfigError(
            f"--set {item}: {_yaml_problem(error)}; quote a text value, e.g. --set 'key=\"{raw}\"'"
        ) from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML scalars) to a nested dict."""
    merged = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value, e.g. epochs=10")
        key, raw = item.split("=", 1)
        target = merged
        *parents, leaf = key.strip().split(".")
        for depth, part in enumerate(parents):
            section = target.get(part)
            if section is not None and not isinstance(section, dict):
                name = ".".join(parents[: depth + 1])
                raise ConfigError(f"--set {item}: {name} is a value ({section!r}), not a section of settings")
            target[part] = dict(section or {})
            target = target[part]
        target[leaf] = _override_value(item, raw)
    return merged


def load_config(model: type[ModelT], path: str | Path | None, overrides: list[str] | None = None) -> ModelT:
    """Load ``model`` from an optional YAML file and ``key=value`` overrides."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides or [])
    return validate(model, data, source=str(path) if path else "config")


def layered_config(
    model: type[ModelT],
    path: str | Path | None,
    overrides: list[str] | None,
    options: dict[str, Any],
    flags: dict[str, str] | None = None,
) -> ModelT:
    """``model`` from an optional YAML file, then its ``key=value`` overrides, then command-line ``options``,
    which win.

    ``options`` maps keys to option values (None: not given; a dict: the keys of that section). A bad option
    value is named by its option (``--k 0: ...``; ``flags`` maps a key whose option is named otherwise, e.g.
    ``{"n_bootstrap": "--bootstrap"}``); a bad key or value from ``--set`` or the file by them and the key.
    """
    values = apply_overrides(read_yaml(path) if path else {}, overrides or [])
    merged = {**values, **_given(options)}
    for key, value in merged.items():
        if isinstance(options.get(key), dict):
            section = values.get(key) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"{key}: expected a section of {key} settings ({key}.path...), not a value")
            merged[key] = {**section, **_given(value)}
    try:
        return model.model_validate(merged)
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        if key in _given_keys(options):
            flag = (flags or {}).get(key, "--" + key.rpartition(".")[2].replace("_", "-"))
            shown = f" {problem['input']!r}" if isinstance(problem["input"], str | int | float) else ""
            raise ConfigError(f"{flag}{shown}: {problem['msg'].removeprefix('Value error, ')}") from None
    from_set = key in {item.partition("=")[0].strip() for item in overrides or []}
    return validate(model, merged, source="--set" if from_set or not path else str(path))


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def _given_keys(options: dict[str, Any], prefix: str = "") -> set[str]:
    """The dotted keys of the options given (not None)."""
    keys: set[str] = set()
    for key, value in options.items():
        if isinstance(value, dict):
            keys |= _given_keys(value, f"{prefix}{key}.")
        elif value is not None:
            keys.add(f"{prefix}{key}")
    return keys
