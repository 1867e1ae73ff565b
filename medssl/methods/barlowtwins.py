"""Barlow Twins (Zbontar et al. 2021): cross-correlation of the two views' embeddings towards identity."""

from __future__ import annotations

import torch
from lightly.loss import BarlowTwinsLoss
from lightly.models.modules.heads import BarlowTwinsProjectionHead

from medssl.methods.base import SSLMethod
from medssl.models.encoder import Encoder


class BarlowTwins(SSLMethod):
    title = "Barlow Twins"

    def __init__(self, encoder: Encoder, gather_distributed: bool = False) -> None:
        super().__init__(encoder, gather_distributed)
        dim = encoder.feature_dim
        self.projector = BarlowTwinsProjectionHead(dim, 2 * dim, 2 * dim)
        self.criterion = BarlowTwinsLoss(gather_distributed=gather_distributed)

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        h0, h1 = self.embed_pair(view0, view1)
        return self.criterion(self.projector(h0), self.projector(h1))
