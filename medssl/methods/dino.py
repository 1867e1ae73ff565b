"""DINO (Caron et al. 2021): a student matches a momentum teacher's centred, sharpened outputs across crops.

lightly's blocks (``DINOProjectionHead``, ``DINOLoss``, ``update_momentum``) with the settings of lightly's
Imagenette benchmark (ResNet-18: 2048-d hidden, 256-d bottleneck, 2048 outputs, centre momentum 0.9), scaled to
small datasets:

* multi-crop: the teacher sees the 2 global crops, the student those and 6 local crops at half the side;
* the teacher is an EMA of the student (momentum 0.99 → 1 on a cosine, as BYOL here: few hundred steps
  would leave DINO's ImageNet 0.996 near its initial weights), never trained by gradients; it is the encoder a
  run monitors and exports, as DINO's paper evaluates the teacher;
* the head's last layer is frozen in the first epoch;
* by backbone family (nothing ResNet-only): with batch norm in the backbone, batch norm in the head and
  teacher temperature 0.04 throughout (DINO's ResNet recipe); without it (ViTs), DINO's ViT recipe, a head
  without batch norm and a teacher temperature warmed up from 0.04 to 0.07 over the first 30 % of training.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from lightly.loss import DINOLoss
from lightly.models.modules.heads import DINOProjectionHead
from torch import nn

from medssl.methods.base import MULTI_CROP, Views, freeze_gradients
from medssl.methods.momentum import MomentumMethod
from medssl.models.encoder import Encoder

OUTPUT_DIM = 2048


def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def dino_head(input_dim: int, batch_norm: bool) -> DINOProjectionHead:
    """lightly's head (its last layer frozen in the first epoch), quiet about its ``weight_norm`` deprecation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return DINOProjectionHead(
            input_dim, 2048, 256, OUTPUT_DIM, batch_norm=batch_norm, freeze_last_layer=1
        )


class DINO(MomentumMethod):
    title = "DINO"
    view_plan = MULTI_CROP

    def __init__(
        self,
        encoder: Encoder,
        gather_distributed: bool = False,
        local_crops: int = MULTI_CROP.local_crops,
        teacher_temp: float | None = None,
        warmup_teacher_temp: float = 0.04,
        warmup_share: float = 0.3,
    ) -> None:
        batch_norm = has_batch_norm(encoder)
        student, teacher = (dino_head(encoder.feature_dim, batch_norm) for _ in range(2))
        super().__init__(encoder, student, gather_distributed, momentum_projector=teacher)
        self.view_plan = replace(MULTI_CROP, local_crops=local_crops)
        self.teacher_temps = (warmup_teacher_temp, teacher_temp or (0.04 if batch_norm else 0.07))
        self.warmup_share = warmup_share
        self.teacher_temp = self.teacher_temps[0]
        """This step's teacher temperature (saved by ``get_extra_state``: it depends on past progress)."""
        self.criterion = DINOLoss(OUTPUT_DIM, warmup_teacher_temp_epochs=0)

    @property
    def trained_encoder(self) -> Encoder:
        return self.momentum_encoder

    def training_loss(self, views: Views) -> torch.Tensor:
        return self.loss(views.global_crops, views.local_crops)

    def loss(
        self, global_crops: Sequence[torch.Tensor], local_crops: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        """Cross-entropy of the student's outputs on every crop against the teacher's on the other global ones."""
        n_global, n_local = len(global_crops), len(local_crops)
        teacher = self.momentum_embed(torch.cat(list(global_crops))).float().chunk(n_global)
        student = list(self.projector(self.encoder(torch.cat(list(global_crops)))).float().chunk(n_global))
        if local_crops:
            student += self.projector(self.encoder(torch.cat(list(local_crops)))).float().chunk(n_local)
        return self.criterion(list(teacher), student, teacher_temp=self.teacher_temp)

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch < self.projector.freeze_last_layer:
            freeze_gradients(self.projector.last_layer)

    def on_step_end(self, progress: float) -> None:
        super().on_step_end(progress)
        start, end = self.teacher_temps
        warmed = min(1.0, progress / self.warmup_share) if self.warmup_share > 0 else 1.0
        self.teacher_temp = start + (end - start) * warmed

    def get_extra_state(self) -> dict[str, Any]:
        return {"teacher_temp": self.teacher_temp}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.teacher_temp = float(state["teacher_temp"])
