"""Shared part of momentum-encoder methods (BYOL, MoCo): an EMA copy of encoder and projector."""

from __future__ import annotations

import copy

import torch
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from medssl.methods.base import SSLMethod
from medssl.models.encoder import Encoder


class MomentumMethod(SSLMethod):
    """Keeps ``momentum_encoder``/``momentum_projector`` as EMAs of the online ones (cosine 0.99 → 1).

    The momentum projector starts as a copy of ``projector``: pass ``momentum_projector`` (a second instance,
    its weights are overwritten) for heads that cannot be deep-copied (weight-normalised layers).
    """

    def __init__(
        self,
        encoder: Encoder,
        projector: nn.Module,
        gather_distributed: bool = False,
        momentum_projector: nn.Module | None = None,
    ) -> None:
        super().__init__(encoder, gather_distributed)
        self.projector = projector
        self.momentum_encoder = copy.deepcopy(encoder)
        if momentum_projector is None:
            momentum_projector = copy.deepcopy(projector)
        else:
            momentum_projector.load_state_dict(projector.state_dict())
        self.momentum_projector = momentum_projector
        deactivate_requires_grad(self.momentum_encoder)
        deactivate_requires_grad(self.momentum_projector)

    @torch.no_grad()
    def momentum_embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.momentum_projector(self.momentum_encoder(views)).detach()

    def on_step_end(self, progress: float) -> None:
        tau = cosine_schedule(int(progress * 1000), 1000, 0.99, 1.0)
        update_momentum(self.encoder, self.momentum_encoder, m=tau)
        update_momentum(self.projector, self.momentum_projector, m=tau)
