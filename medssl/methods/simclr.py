"""SimCLR (Chen et al. 2020): NT-Xent between two views; the study used temperature 0.5 and a 128-d projector."""

from __future__ import annotations

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import SimCLRProjectionHead

from medssl.methods.base import SSLMethod
from medssl.models.encoder import Encoder


class SimCLR(SSLMethod):
    title = "SimCLR"

    def __init__(self, encoder: Encoder, gather_distributed: bool = False, temperature: float = 0.5) -> None:
        super().__init__(encoder, gather_distributed)
        dim = encoder.feature_dim
        self.projector = SimCLRProjectionHead(dim, dim, 128)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        h0, h1 = self.embed_pair(view0, view1)
        return self.criterion(self.projector(h0), self.projector(h1))
