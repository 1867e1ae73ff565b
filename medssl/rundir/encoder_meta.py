"""``encoder.json``: how to use the ``encoder.pt`` weights beside it (``<dataset>/pretrain/<encoder>/``), or
what a baseline spec stood for (``<dataset>/eval/<encoder>/``, no weights beside it).

A JSON object with at least ``backbone`` (a registered name such as ``resnet18`` or ``vit_tiny``, or
``timm:<name>``), the input ``mean`` and ``std`` (with ``patch``, ``fixed_size``, ``trained_size`` and
``input_channels`` where they apply), and for an SSL encoder its method, recipe, data and the keyed
``settings`` that made it. A ``timm:`` or ``hf:`` baseline also records its ``kind`` (``imagenet`` or
``foundation``: its group in the verdict) and the rule that gave it (``kind_rule``), its ``title``
(``DINOv2 ViT-S/14``), ``features`` (``cls token``, or the pooling), the ``weights`` it loaded and its
``parameters``. In a pre-training run it is written last, so its presence marks a finished run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from medssl.errors import MedsslError
from medssl.rundir.atomic import write_text

ENCODER_WEIGHTS = "encoder.pt"
ENCODER_META = "encoder.json"


def write_encoder_meta(
    directory: Path, meta: Mapping[str, Any], on_error: Callable[[OSError], Exception] | None = None
) -> Path:
    """Write ``directory/encoder.json`` atomically (values JSON cannot hold are written as text)."""
    return write_text(directory / ENCODER_META, json.dumps(dict(meta), indent=2, default=str), on_error)


def read_encoder_meta(directory: Path) -> dict[str, Any]:
    """The metadata of the encoder in ``directory``; a MedsslError naming the file when it is missing or
    incomplete (invalid JSON, or no ``backbone``)."""
    path = directory / ENCODER_META
    if not path.is_file():
        raise MedsslError(f"{directory}: no {ENCODER_META}; pass a pre-training output directory")
    try:
        meta = json.loads(path.read_text())
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("backbone"), str):
        raise MedsslError(
            f"{path}: not a complete encoder description (invalid JSON or no 'backbone'); restore the "
            "file written by `medssl pretrain` or pre-train again"
        )
    return meta


def recorded_meta(directory: Path) -> dict[str, Any]:
    """``directory/encoder.json`` as written; empty when it is missing or unreadable (an unfinished run)."""
    try:
        meta = json.loads((directory / ENCODER_META).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def recorded_settings(directory: Path) -> dict[str, Any] | None:
    """The keyed ``settings`` recorded in ``directory/encoder.json``; None when the file, or the record, is
    missing or unreadable (an unfinished run, or one written before settings were recorded)."""
    settings = recorded_meta(directory).get("settings")
    return settings if isinstance(settings, dict) else None
