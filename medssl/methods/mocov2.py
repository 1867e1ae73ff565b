"""MoCo v2 (Chen et al. 2020): contrast queries with momentum keys and a queue of past keys.

Differences from the paper: no shuffled BatchNorm; the queue is capped at the training-set size so that a
small dataset does not fill it with stale copies of the same images.
"""

from __future__ import annotations

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import MoCoProjectionHead

from medssl.methods.momentum import MomentumMethod
from medssl.models.encoder import Encoder


class MoCoV2(MomentumMethod):
    title = "MoCo v2"

    def __init__(self, encoder: Encoder, gather_distributed: bool = False, queue_size: int = 4096) -> None:
        dim = encoder.feature_dim
        super().__init__(encoder, MoCoProjectionHead(dim, dim, 128), gather_distributed)
        self.criterion = NTXentLoss(temperature=0.2, memory_bank_size=(queue_size, 128))

    @classmethod
    def for_training_set(
        cls, encoder: Encoder, n_train: int, batch_size: int, gather_distributed: bool = False
    ) -> MoCoV2:
        """A queue of every training image seen in one epoch (whole batches), at least one batch."""
        queue_size = max(batch_size, n_train // batch_size * batch_size)
        return cls(encoder, gather_distributed=gather_distributed, queue_size=queue_size)

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        query = self.projector(self.encoder(view0))
        key = self.momentum_embed(view1)
        return self.criterion(query, key)
