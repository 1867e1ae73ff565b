"""DCLW (Yeh et al. 2022): decoupled contrastive loss with von Mises-Fisher weighting (temperature 0.1, sigma 0.5)."""

from __future__ import annotations

import torch
from lightly.loss import DCLWLoss
from lightly.models.modules.heads import SimCLRProjectionHead

from medssl.methods.base import SSLMethod
from medssl.models.encoder import Encoder


class DCLW(SSLMethod):
    title = "DCLW"

    def __init__(
        self, encoder: Encoder, gather_distributed: bool = False, temperature: float = 0.1, sigma: float = 0.5
    ) -> None:
        super().__init__(encoder, gather_distributed)
        dim = encoder.feature_dim
        self.projector = SimCLRProjectionHead(dim, dim, 128)
        self.criterion = DCLWLoss(temperature=temperature, sigma=sigma, gather_distributed=gather_distributed)

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        h0, h1 = self.embed_pair(view0, view1)
        return self.criterion(self.projector(h0), self.projector(h1))
