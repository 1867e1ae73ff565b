"""medssl: in-domain self-supervised pre-training vs ImageNet transfer on small medical image datasets."""

from __future__ import annotations

from typing import Any

__all__ = ["load_encoder"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``medssl.load_encoder`` without importing torch when only the CLI's help is needed."""
    if name == "load_encoder":
        from medssl.models.encoder import load_encoder

        return load_encoder
    raise AttributeError(name)
