"""The contract of an SSL method: heads and a loss over two batches of augmented views.

A method is a plain ``nn.Module`` that owns its heads (and momentum copies), not the training loop: the
Lightning module in ``medssl.train.module`` drives every method the same way. Losses, heads and momentum
updates come from lightly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from medssl.errors import ConfigError
from medssl.models.encoder import Encoder

METHODS: dict[str, type[SSLMethod]] = {}


def register(name: str) -> Callable[[type[SSLMethod]], type[SSLMethod]]:
    """Class decorator adding a method to ``METHODS`` under ``name``."""

    def add(cls: type[SSLMethod]) -> type[SSLMethod]:
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


class SSLMethod(nn.Module):
    """Base class: ``encoder`` plus whatever heads the method needs."""

    name: ClassVar[str] = ""
    default_lr: ClassVar[float] = 0.06
    """SGD learning rate at batch size 128 (scaled linearly with the batch), as in lightly's benchmarks."""

    def __init__(self, encoder: Encoder, gather_distributed: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.gather_distributed = gather_distributed

    def embed_pair(self, view0: torch.Tensor, view1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features of both views in one forward pass."""
        features = self.encoder(torch.cat([view0, view1]))
        return features.chunk(2)

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_step_end(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1] (momentum updates)."""


def build_method(name: str, encoder: Encoder, gather_distributed: bool = False, **options) -> SSLMethod:
    """Instantiate the method registered as ``name``."""
    from medssl import methods  # noqa: F401  (registers the built-in methods)

    if name not in METHODS:
        raise ConfigError(f"method '{name}' is unknown; choose one of: {', '.join(METHODS)}")
    return METHODS[name](encoder, gather_distributed=gather_distributed, **options)
