"""VICReg (Bardes et al. 2022): variance-invariance-covariance loss, weights 25/25/1, expander sized to the backbone."""

from __future__ import annotations

import torch
from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead

from medssl.methods.base import SSLMethod
from medssl.models.encoder import Encoder


class VICReg(SSLMethod):
    title = "VICReg"
    default_lr = 0.03

    def __init__(self, encoder: Encoder, gather_distributed: bool = False) -> None:
        super().__init__(encoder, gather_distributed)
        dim = encoder.feature_dim
        self.expander = VICRegProjectionHead(dim, 2 * dim, 2 * dim, num_layers=3)
        self.criterion = VICRegLoss(25.0, 25.0, 1.0, gather_distributed=gather_distributed)

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        h0, h1 = self.embed_pair(view0, view1)
        return self.criterion(self.expander(h0), self.expander(h1))
