"""The contract of an SSL method: heads and a loss over two batches of augmented views.

A method is a plain ``nn.Module`` that owns its heads (and momentum copies), not the training loop: the
Lightning module in ``medssl.train.module`` drives every method the same way. Losses, heads and momentum
updates come from lightly.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from medssl.models.encoder import Encoder


class SSLMethod(nn.Module):
    """Base class: ``encoder`` plus whatever heads the method needs."""

    title: ClassVar[str] = ""
    """The method's name in reports, e.g. ``MoCo v2``."""
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

    @classmethod
    def for_training_set(
        cls, encoder: Encoder, n_train: int, batch_size: int, gather_distributed: bool = False
    ) -> SSLMethod:
        """The method sized for a training set of ``n_train`` images in batches of ``batch_size``.

        Most methods need no size; a method that does (MoCo's queue) overrides this.
        """
        return cls(encoder, gather_distributed=gather_distributed)

    def on_step_end(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1] (momentum updates)."""
