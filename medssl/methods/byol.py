"""BYOL (Grill et al. 2020): online predictor regresses the momentum network's projection."""

from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead

from medssl.methods.momentum import MomentumMethod
from medssl.models.encoder import Encoder


class BYOL(MomentumMethod):
    title = "BYOL"

    def __init__(self, encoder: Encoder, gather_distributed: bool = False) -> None:
        dim = encoder.feature_dim
        super().__init__(encoder, BYOLProjectionHead(dim, 2 * dim, 256), gather_distributed)
        self.predictor = BYOLPredictionHead(256, 2 * dim, 256)
        self.criterion = NegativeCosineSimilarity()

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        h0, h1 = self.embed_pair(view0, view1)
        p0, p1 = self.predictor(self.projector(h0)), self.predictor(self.projector(h1))
        t0, t1 = self.momentum_embed(torch.cat([view0, view1])).chunk(2)
        return 0.5 * (self.criterion(p0, t1) + self.criterion(p1, t0))
