"""SwAV (Caron et al. 2020): predict each global crop's Sinkhorn cluster code from every other crop.

lightly's blocks (``SwaVProjectionHead``, ``SwaVPrototypes``, ``SwaVLoss``) with lightly's benchmark settings
(2048-d hidden, 128-d projections on the unit sphere, temperature 0.1, Sinkhorn ε 0.05, 3 iterations), scaled
to small datasets:

* multi-crop: 2 global crops at the working size and 6 local crops at half its side (lightly's Imagenette
  benchmark: 2 × 128 px + 6 × 64 px);
* prototypes: one per 3 training images (lightly's Imagenette benchmark: 3000 for 9,469), 16 to 3000; kept on
  the unit sphere after every step and frozen in the first epoch;
* a queue of the global crops' projections from earlier batches of the epoch (at most 15 batches, as lightly's
  ImageNet benchmark), joining the Sinkhorn codes once it is full and 10 % of training has passed (lightly: from
  epoch 15 of 100-800), so that a small batch still spreads over many prototypes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.models.modules.heads import SwaVProjectionHead, SwaVPrototypes

from medssl.methods.base import MULTI_CROP, SSLMethod, Views, freeze_gradients
from medssl.models.encoder import Encoder

PROJECTION_DIM = 128
QUEUE_BATCHES = 15
QUEUE_START = 0.1
"""Share of training after which a full queue joins the Sinkhorn codes."""


class SwAV(SSLMethod):
    title = "SwAV"
    view_plan = MULTI_CROP

    def __init__(
        self,
        encoder: Encoder,
        gather_distributed: bool = False,
        prototypes: int = 512,
        queue_batches: int = 0,
        batch_size: int = 0,
        local_crops: int = MULTI_CROP.local_crops,
    ) -> None:
        super().__init__(encoder, gather_distributed)
        self.view_plan = replace(MULTI_CROP, local_crops=local_crops)
        self.projector = SwaVProjectionHead(encoder.feature_dim, 2048, PROJECTION_DIM)
        self.prototypes = SwaVPrototypes(PROJECTION_DIM, prototypes)
        self.prototypes.normalize()
        self.criterion = SwaVLoss(sinkhorn_gather_distributed=gather_distributed)
        queue = (self.view_plan.global_crops, queue_batches * batch_size, PROJECTION_DIM)
        self.register_buffer("queue", torch.zeros(queue))
        self.queue_batches = queue_batches if batch_size else 0
        self.steps = 0
        """Optimiser steps taken: the queue is full after ``queue_batches`` (saved by ``get_extra_state``)."""
        self.use_queue = False

    @classmethod
    def for_training_set(
        cls, encoder: Encoder, n_train: int, batch_size: int, gather_distributed: bool = False
    ) -> SwAV:
        """Prototypes for ``n_train`` images; a queue of the epoch's other batches, at most 15."""
        prototypes = min(3000, max(16, n_train // 3))
        queue_batches = max(0, min(QUEUE_BATCHES, n_train // batch_size - 1))
        return cls(encoder, gather_distributed, prototypes, queue_batches, batch_size)

    def project(self, crops: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Unit-length projections of crops of one size (one backbone pass), per crop."""
        z = F.normalize(self.projector(self.encoder(torch.cat(list(crops)))), dim=1)
        return list(z.chunk(len(crops)))

    def training_loss(self, views: Views) -> torch.Tensor:
        return self.loss(views.global_crops, views.local_crops)

    def loss(
        self, global_crops: Sequence[torch.Tensor], local_crops: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        """SwAV's swapped prediction over ``global_crops`` (the codes) and ``local_crops`` (predictions only)."""
        high = self.project(global_crops)
        low = self.project(local_crops) if local_crops else []
        queued = self.push(high)
        logits = [self.prototypes(z).float() for z in high + low]  # Sinkhorn's exp(x / 0.05) in float32
        n_high = len(high)
        return self.criterion(logits[:n_high], logits[n_high:], queued).reshape(())

    @torch.no_grad()
    def push(self, projections: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """Prototype scores of the queue (None until it joins), then the newest projections enter it."""
        if not self.queue_batches:
            return None
        scores = [self.prototypes(q).float() for q in self.queue] if self.use_queue else None
        fresh = torch.stack([z.detach().to(self.queue.dtype) for z in projections])
        self.queue.copy_(torch.cat([fresh, self.queue], dim=1)[:, : self.queue.shape[1]])
        return scores

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch == 0:  # frozen prototypes in the first epoch (SwAV's freeze_prototypes_niters)
            freeze_gradients(self.prototypes)

    def on_step_end(self, progress: float) -> None:
        self.prototypes.normalize()
        self.steps += 1
        self.use_queue = 0 < self.queue_batches <= self.steps and progress >= QUEUE_START

    def get_extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps, "use_queue": self.use_queue}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.steps, self.use_queue = int(state["steps"]), bool(state["use_queue"])
