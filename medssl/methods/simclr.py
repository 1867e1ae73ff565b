"""SimCLR (Chen et al. 2020): NT-Xent between two views; the study used temperature 0.5 and a 128-d projector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import SimCLRProjectionHead
from lightly.utils import dist

from medssl.methods.base import SSLMethod
from medssl.models.encoder import Encoder


class CapturableNTXentLoss(NTXentLoss):
    """lightly's NT-Xent without its host sync: on one process, the similarity of each view with itself is
    masked with -inf instead of removed by boolean indexing (a data-dependent shape, so a device-to-host sync
    and a graph break under ``torch.compile``). The same loss: a -inf logit adds nothing to the softmax. Other
    cases (several processes, a memory bank) use lightly's code."""

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        if self.memory_bank.size[0] > 0 or (self.gather_distributed and dist.world_size() > 1):
            return super().forward(out0, out1)
        out0, out1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)
        batch = out0.shape[0]
        self_pair = torch.eye(batch, device=out0.device, dtype=torch.bool)
        views = (out0, out1)
        blocks = [[a @ b.T / self.temperature for b in views] for a in views]
        for i in (0, 1):
            blocks[i][i] = blocks[i][i].masked_fill(self_pair, float("-inf"))
        # Rows: view 0 then view 1; columns: the other view first (its positive at the row's index), then its own.
        logits = torch.cat(
            [torch.cat([blocks[0][1], blocks[0][0]], 1), torch.cat([blocks[1][0], blocks[1][1]], 1)]
        )
        labels = torch.arange(batch, device=out0.device).repeat(2)
        return self.cross_entropy(logits, labels)


class SimCLR(SSLMethod):
    title = "SimCLR"

    def __init__(self, encoder: Encoder, gather_distributed: bool = False, temperature: float = 0.5) -> None:
        super().__init__(encoder, gather_distributed)
        dim = encoder.feature_dim
        self.projector = SimCLRProjectionHead(dim, dim, 128)
        self.criterion = CapturableNTXentLoss(temperature=temperature, gather_distributed=gather_distributed)

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        h0, h1 = self.embed_pair(view0, view1)
        return self.criterion(self.projector(h0), self.projector(h1))
