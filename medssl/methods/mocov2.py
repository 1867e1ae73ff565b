"""MoCo v2 (Chen et al. 2020): contrast queries with momentum keys and a queue of past keys.

Differences from the paper: no shuffled BatchNorm; the queue is capped at the training-set size so that a
small dataset does not fill it with stale copies of the same images.
"""

from __future__ import annotations

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import MoCoProjectionHead

from medssl.methods.base import register
from medssl.methods.momentum import MomentumMethod
from medssl.models.encoder import Encoder


@register("mocov2")
class MoCoV2(MomentumMethod):
    def __init__(self, encoder: Encoder, gather_distributed: bool = False, queue_size: int = 4096) -> None:
        dim = encoder.feature_dim
        super().__init__(encoder, MoCoProjectionHead(dim, dim, 128), gather_distributed)
        self.criterion = NTXentLoss(temperature=0.2, memory_bank_size=(queue_size, 128))

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        query = self.projector(self.encoder(view0))
        key = self.momentum_embed(view1)
        return self.criterion(query, key)
