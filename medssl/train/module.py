"""One Lightning module drives every SSL method: batched augmentation of the views it asks for, the loss,
the schedule.

What training watches (non-finite losses, the kNN monitor, ``history.csv``) lives in callbacks
(``medssl.train.monitors``), so the module holds only the optimisation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import pytorch_lightning as pl
import torch
from lightly.utils.scheduler import CosineWarmupScheduler

from medssl.common.images import unit_float
from medssl.methods.base import SSLMethod, Views
from medssl.train.config import Recipe
from medssl.train.loader import IndexBatches
from medssl.train.views import draw_views


class PretrainModule(pl.LightningModule):
    """Trains ``method`` on ``images`` (N, C, H, W uint8, kept out of the state dict and moved to the device once).

    ``augment`` draws the method's global crops, ``local_augment`` its local crops (None when its view plan
    has none; see :func:`medssl.train.views.view_augments`).
    """

    def __init__(
        self,
        method: SSLMethod,
        augment: torch.nn.Module,
        images: torch.Tensor,
        batches: IndexBatches,
        recipe: Recipe,
        epochs: int,
        compile_step: bool = False,
        step_budget: int | None = None,
        local_augment: torch.nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.augment = augment
        self.local_augment = local_augment
        self.images = images
        self.batches = batches
        self.recipe = recipe
        self.epochs = epochs
        self.compile_step = compile_step
        self.step_budget = step_budget
        """Optimiser steps after which training stops, inside the last epoch if need be (None: every epoch)."""
        self._step_loss = self.step_loss

    def configure_optimizers(self):
        params = [p for p in self.method.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(  # fused: one kernel for all parameters (2.5x faster step on a CPU)
            params,
            lr=self.recipe.lr,
            momentum=self.recipe.momentum,
            weight_decay=self.recipe.weight_decay,
            fused=True,
        )
        if not self.recipe.cosine:
            return optimizer
        total_steps = self.total_steps
        steps_per_epoch = max(1, total_steps // self.epochs)
        scheduler = CosineWarmupScheduler(
            optimizer,
            warmup_epochs=min(self.recipe.warmup_epochs * steps_per_epoch, total_steps),
            max_epochs=total_steps,
        )
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]

    @cached_property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run: the step budget, else every batch of every epoch (read once, when
        the Trainer first asks for the optimiser; not recomputed every step)."""
        return max(1, self.step_budget or int(self.trainer.estimated_stepping_batches))

    def on_fit_start(self) -> None:
        self.images = self.images.to(self.device)
        if self.compile_step:
            self._step_loss = compiled_step(self.step_loss, self.images)

    def views(self, indices: torch.Tensor) -> Views:
        """The method's views (``method.view_plan``) of the images at ``indices`` (augmentation in float32).

        All crops of one size are augmented in one call on the repeated batch (every copy draws its own
        parameters): fewer kernel launches and less Python overhead, which bound the input path on a GPU.
        """
        x = unit_float(self.images[indices.to(self.images.device)], "nchw")
        with torch.autocast(self.device.type, enabled=False):
            return draw_views(x, self.method.view_plan, self.augment, self.local_augment)

    def step_loss(self, indices: torch.Tensor) -> torch.Tensor:
        """The capturable part of a step (``indices`` on the device): gather, augment the views, forward, loss.

        With ``compile_step`` it runs compiled (its backward too); it has no host sync and static shapes.
        """
        return self.method.training_loss(self.views(indices))

    def training_step(self, indices: torch.Tensor, batch_idx: int) -> torch.Tensor:
        # Augmentation randomness depends only on (seed, step, rank): a resumed run draws the same views.
        torch.manual_seed(self.batches.seed * 1_000_003 + self.global_step * 7919 + self.global_rank)
        loss = self._step_loss(indices.to(self.images.device, non_blocking=True))
        # The progress bar reads its values on the host every step: on a GPU that would stall the pipeline.
        self.log("loss", loss.detach(), prog_bar=self.device.type == "cpu")
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        self.method.before_optimizer_step(self.current_epoch)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.method.on_step_end(min(1.0, self.global_step / self.total_steps))
        # Not Trainer(max_steps): with it Lightning resumes every checkpoint as if inside an epoch, and takes
        # a step too few. Stopping here ends the epoch normally, so a resume starts at the next one.
        if self.step_budget and self.global_step >= self.step_budget:
            self.trainer.should_stop = True


def compiled_step(step: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> Callable:
    """``step`` under ``torch.compile``: on a GPU in ``reduce-overhead`` mode (CUDA graphs), with the image store
    marked static so that a replay reads it in place instead of copying it into the graph's inputs."""
    if images.device.type != "cuda":
        return torch.compile(step)
    torch._dynamo.mark_static_address(images)
    return torch.compile(step, mode="reduce-overhead")
