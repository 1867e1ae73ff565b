"""Encoder specs: the one string that names an encoder wherever medssl takes one (``baselines:``,
``evaluation.finetune``, ``--encoder``; ``timm:`` also as an SSL ``backbone``).

| spec | encoder | kind (its group in a study) |
|---|---|---|
| ``random:<backbone>`` | a registered backbone, untrained | random |
| ``imagenet:<backbone>`` | a registered backbone with torchvision's / EfficientNet's ImageNet weights | imagenet |
| ``timm:<name>[@<file>]`` | a timm model, weights from the cache or the file | imagenet or foundation, by tag |
| ``hf:<directory>`` | a transformers model folder (or a repository in the cache) | foundation |
| a directory | a ``medssl pretrain`` run | its SSL method |

A family is one module registered in ``FAMILIES`` by its prefix, with ``<family>_encoder(spec)`` and
``<family>_problems(spec, sizes)`` (everything that would stop it, as lines, for the pre-flight check).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

from medssl.models.encoder import Encoder

FAMILIES = {"timm": "medssl.models.timm_encoder", "hf": "medssl.models.hf_encoder"}
"""Spec prefix -> the module of that encoder family (imported on first use: timm and transformers are slow)."""
BUILTIN = ("random", "imagenet")
SPEC_FORMS = "random:<backbone>, imagenet:<backbone>, timm:<model name>[@<weights file>] or hf:<model folder>"


def family(spec: str) -> str | None:
    """The family prefix of ``spec`` (``timm``, ``hf``), or None for a built-in spec or a run directory."""
    prefix, sep, rest = spec.partition(":")
    return prefix if sep and rest and prefix in FAMILIES else None


def _function(prefix: str, suffix: str) -> Callable:
    return getattr(importlib.import_module(FAMILIES[prefix]), f"{prefix}_{suffix}")


def family_encoder(spec: str) -> Encoder | None:
    """The encoder of a ``timm:`` or ``hf:`` spec; None for any other string."""
    prefix = family(spec)
    return None if prefix is None else _function(prefix, "encoder")(spec)


def family_problems(spec: str, sizes: list[int]) -> list[str]:
    """Why a ``timm:`` or ``hf:`` spec cannot be used at these image sizes (empty when it can)."""
    prefix = family(spec)
    return [] if prefix is None else _function(prefix, "problems")(spec, sizes)


def check_spec(spec: str) -> str:
    """``spec`` when it has the form of a baseline spec, else a ValueError listing the forms (validators)."""
    prefix, _, rest = spec.partition(":")
    if not rest or prefix not in (*BUILTIN, *FAMILIES):
        raise ValueError(f"'{spec}' is not an encoder spec; use {SPEC_FORMS}")
    return spec


def path_safe(text: str) -> str:
    """``text`` as one file-name component: characters other than letters, digits, ``.``, ``_`` and ``-``
    become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def spec_id(spec: str) -> str:
    """The encoder id of a spec in results.csv and the run directory: ``imagenet-resnet18``,
    ``timm-vit_small_patch14_dinov2.lvd142m``, ``timm-<name>-<file stem>``, ``hf-<folder or repo name>``."""
    prefix, _, rest = spec.partition(":")
    if prefix == "timm":
        name, _, file = rest.partition("@")
        return path_safe(f"timm-{name}" + (f"-{Path(file).stem}" if file else ""))
    if prefix == "hf":
        parts = [p for p in Path(rest).parts if p not in ("/", ".")]
        cached = next((p for p in parts if p.startswith("models--")), None)
        name = cached.rsplit("--", 1)[-1] if cached else (parts[-1] if parts else rest)
        return path_safe(f"hf-{name}")
    return path_safe(spec.replace(":", "-"))


def backbone_problems(name: str, init: str, sizes: list[int]) -> list[str]:
    """Why SSL pre-training cannot start with backbone ``name`` from ``init`` at these image sizes: an unknown
    backbone, a size it cannot take, or (``timm:`` backbones, and ``pretrained``) weights that are missing,
    not the kind asked for, or do not fit. Empty when it can start."""
    from medssl.errors import MedsslError
    from medssl.models.backbones import TIMM_PREFIX, backbone_spec, build_backbone

    try:
        inputs = backbone_spec(name).inputs
    except MedsslError as error:
        return [str(error)]
    problems = [f"backbone {name} {p}" for p in dict.fromkeys(filter(None, map(inputs.size_problem, sizes)))]
    if init == "pretrained" or (name.startswith(TIMM_PREFIX) and init != "random"):
        try:
            build_backbone(name, init)  # type: ignore[arg-type]
        except MedsslError as error:
            problems.insert(0, str(error))
    return problems
