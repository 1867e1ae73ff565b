"""The settings key: a canonical hash of the data, pre-training and evaluation settings behind a result.

Every results row, encoder and pre-training run carries the key of the settings that made it, and the run
directory's ``settings.json`` maps each key back to its settings, so a rerun with other settings is told
exactly which keys changed instead of silently reusing old results.

Only settings that change a result are keyed. Runtime choices are not: where the pixel cache lives, the
dataset's display name, the accelerator and device count, ``torch.compile``, the progress bar, and the
training-time kNN monitor (it never touches the exported encoder).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medssl.errors import ConfigError
from medssl.rundir.atomic import write_text
from medssl.rundir.lock import locked

SETTINGS = "settings.json"
DATA_RUNTIME = ("name", "cache_dir")
PRETRAIN_RUNTIME = (
    "progress_bar",
    "accelerator",
    "devices",
    "num_nodes",
    "compile",
    "knn_k",
    "knn_every",
    "knn_bank_size",
)
EVALUATION_BY_PROTOCOL = {
    "knn": ("k", "n_bootstrap"),
    "knn_weighted": ("k", "temperature", "n_bootstrap"),
    "linear": ("class_weight", "n_bootstrap"),
    "finetune": ("class_weight", "finetune_epochs", "finetune_min_steps", "patience", "n_bootstrap"),
}
"""The evaluation settings each protocol's result depends on (a new k does not redo the linear probe)."""


def canonical(settings: Mapping[str, Any]) -> str:
    """Sorted-key, whitespace-free JSON: equal settings give equal text."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)


def settings_key(settings: Mapping[str, Any]) -> str:
    """A 16-hex-digit hash of ``canonical(settings)``."""
    return hashlib.blake2b(canonical(settings).encode(), digest_size=8).hexdigest()


def data_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The keyed part of a ``DataConfig`` dump."""
    return {key: value for key, value in data.items() if key not in DATA_RUNTIME}


def pretrain_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keyed part of a ``PretrainConfig`` dump (its data section included)."""
    keyed = {key: value for key, value in config.items() if key not in PRETRAIN_RUNTIME}
    keyed["data"] = data_settings(config.get("data") or {})
    return keyed


def evaluation_settings(protocol: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings among ``values`` that ``protocol``'s result depends on."""
    return {
        "protocol": protocol,
        **{key: values.get(key) for key in EVALUATION_BY_PROTOCOL.get(protocol, ())},
    }


def cell_settings(
    data: Mapping[str, Any], encoder: Mapping[str, Any], evaluation: Mapping[str, Any]
) -> dict[str, Any]:
    """What an evaluation cell is made with: its data, its encoder's settings and its protocol's."""
    return {"data": dict(data), "encoder": dict(encoder), "evaluation": dict(evaluation)}


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every key whose value differs (``(none)`` where one side lacks it)."""
    before, after = flatten(old), flatten(new)
    missing = object()
    lines = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, missing), after.get(key, missing)
        if a != b:
            show = lambda v: "(none)" if v is missing else json.dumps(v, default=str)  # noqa: E731
            lines.append(f"{key}: {show(a)} -> {show(b)}")
    return lines


def changed_common(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``changed_settings`` over the keys both sides have: a setting that a newer medssl added (so an older
    run lacks it) is not a change."""
    before, after = flatten(old), flatten(new)
    common = sorted(set(before) & set(after))
    return changed_settings({k: before[k] for k in common}, {k: after[k] for k in common})


def read_registry(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``settings.json`` of ``run_dir``: settings key → settings (empty if absent or unreadable)."""
    path = Path(run_dir) / SETTINGS
    try:
        registry = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return registry if isinstance(registry, dict) else {}


def record_settings(run_dir: str | Path, settings: Mapping[str, Any]) -> str:
    """Add ``settings`` to ``run_dir/settings.json`` (atomically, once per key, under its lock so parallel
    cells never drop each other's keys); returns its key."""
    key = settings_key(settings)
    if key in read_registry(run_dir):
        return key
    with locked(Path(run_dir) / SETTINGS):
        registry = read_registry(run_dir)
        if key not in registry:
            registry[key] = json.loads(canonical(settings))
            write_text(Path(run_dir) / SETTINGS, json.dumps(registry, indent=1, sort_keys=True))
    return key


def refuse_changed(what: str, changes: list[str], start_over: str) -> ConfigError:
    """The one-line refusal of a rerun whose settings differ from the run's."""
    shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
    return ConfigError(
        f"{what} was made with other settings ({shown or 'settings unknown'}); nothing was changed. "
        f"{start_over}, or use another --out"
    )
