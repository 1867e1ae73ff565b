"""SSL methods, one small file each, listed by name in ``METHODS``.

Adding a method: write ``medssl/methods/<name>.py`` with an ``SSLMethod`` subclass (its views, heads and
loss), and add it to ``METHODS`` below. Nothing registers itself on import.
"""

from __future__ import annotations

from medssl.errors import ConfigError
from medssl.methods.barlowtwins import BarlowTwins
from medssl.methods.base import SSLMethod
from medssl.methods.byol import BYOL
from medssl.methods.dclw import DCLW
from medssl.methods.dino import DINO
from medssl.methods.mae import MAE
from medssl.methods.mocov2 import MoCoV2
from medssl.methods.simclr import SimCLR
from medssl.methods.simsiam import SimSiam
from medssl.methods.swav import SwAV
from medssl.methods.vicreg import VICReg
from medssl.models.encoder import Encoder

METHODS: dict[str, type[SSLMethod]] = {
    "simclr": SimCLR,
    "dclw": DCLW,
    "simsiam": SimSiam,
    "vicreg": VICReg,
    "byol": BYOL,
    "barlowtwins": BarlowTwins,
    "mocov2": MoCoV2,
    "swav": SwAV,
    "dino": DINO,
    "mae": MAE,
}
"""Every SSL method by its name in configs, run directories and results (the study's four first)."""

STUDY_METHODS = ("simclr", "dclw", "simsiam", "vicreg")
"""The four methods of Chattopadhyay et al. (ICIP 2023)."""


def method_class(name: str) -> type[SSLMethod]:
    """The class of the method called ``name``; a ConfigError listing the choices otherwise."""
    if name not in METHODS:
        raise ConfigError(f"method '{name}' is unknown; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def method_problems(name: str, backbone: str) -> list[str]:
    """Why method ``name`` cannot train ``backbone`` (MAE needs a ViT), as lines for a pre-flight check."""
    problem = method_class(name).backbone_problem(backbone)
    return [problem] if problem else []


def build_method(name: str, encoder: Encoder, gather_distributed: bool = False, **options) -> SSLMethod:
    """The method called ``name`` around ``encoder``, with explicit constructor ``options``."""
    return method_class(name)(encoder, gather_distributed=gather_distributed, **options)


__all__ = ["METHODS", "STUDY_METHODS", "SSLMethod", "build_method", "method_class", "method_problems"]
