"""SimSiam (Chen & He 2021): predictor + stop-gradient, symmetric negative cosine similarity.

The study's code left the predictor head out, which is what lets SimSiam avoid collapse; medssl keeps it.
"""

from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules.heads import SimSiamPredictionHead, SimSiamProjectionHead

from medssl.methods.base import SSLMethod
from medssl.models.encoder import Encoder


class SimSiam(SSLMethod):
    title = "SimSiam"
    default_lr = 0.05

    def __init__(self, encoder: Encoder, gather_distributed: bool = False) -> None:
        super().__init__(encoder, gather_distributed)
        dim = encoder.feature_dim
        self.projector = SimSiamProjectionHead(dim, dim, dim)
        self.predictor = SimSiamPredictionHead(dim, max(dim // 4, 64), dim)
        self.criterion = NegativeCosineSimilarity()

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        h0, h1 = self.embed_pair(view0, view1)
        z0, z1 = self.projector(h0), self.projector(h1)
        p0, p1 = self.predictor(z0), self.predictor(z1)
        return 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))
