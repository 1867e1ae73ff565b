"""Backbones and the ``Encoder`` that every stage passes around."""

from medssl.models.backbones import BACKBONES, build_backbone
from medssl.models.encoder import Encoder, build_encoder, encoder_from_spec, load_encoder, save_encoder

__all__ = [
    "BACKBONES",
    "Encoder",
    "build_backbone",
    "build_encoder",
    "encoder_from_spec",
    "load_encoder",
    "save_encoder",
]
