"""One Lightning module drives every SSL method: batched augmentation, the loss, the schedule, the monitors."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from lightly.utils.scheduler import CosineWarmupScheduler
from pytorch_lightning.utilities import rank_zero_warn

from medssl.errors import TrainingError
from medssl.methods.base import SSLMethod
from medssl.train.config import Recipe
from medssl.train.loader import IndexBatches, to_float
from medssl.train.monitors import (
    collapse_warning,
    effective_rank,
    embedding_std,
    read_history,
    write_history,
)

FINITE_CHECK_EVERY = 50
"""On a GPU the loss is checked for NaN/inf on the host every this many steps and at each epoch's end (on the
CPU, where reading it costs nothing, every step)."""


class PretrainModule(pl.LightningModule):
    """Trains ``method`` on ``images`` (N, C, H, W uint8, kept out of the state dict and moved to the device once)."""

    def __init__(
        self,
        method: SSLMethod,
        augment: torch.nn.Module,
        images: torch.Tensor,
        labels: np.ndarray,
        split: dict[str, np.ndarray],
        batches: IndexBatches,
        recipe: Recipe,
        epochs: int,
        knn_k: int = 200,
        knn_every: int = 1,
        knn_bank_size: int = 5000,
        history_path: Path | None = None,
        compile_step: bool = False,
    ) -> None:
        super().__init__()
        self.method = method
        self.augment = augment
        self.images = images
        self.labels = labels
        self.split = split
        self.batches = batches
        self.recipe = recipe
        self.epochs = epochs
        self.knn_k = knn_k
        self.knn_every = knn_every
        self.knn_bank = split["train"][:knn_bank_size]
        self.history_path = history_path
        self._epoch_start = 0.0
        self._loss_sum = torch.zeros(())
        self._steps = 0
        self._first_bad_step = torch.full((), -1)
        self.finite_check_every = 1
        self.compile_step = compile_step
        self._step_loss = self.step_loss

    # -- set-up ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.method.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            params, lr=self.recipe.lr, momentum=self.recipe.momentum, weight_decay=self.recipe.weight_decay
        )
        if not self.recipe.cosine:
            return optimizer
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total_steps // self.epochs)
        scheduler = CosineWarmupScheduler(
            optimizer,
            warmup_epochs=min(self.recipe.warmup_epochs * steps_per_epoch, total_steps),
            max_epochs=total_steps,
        )
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]

    def on_fit_start(self) -> None:
        self.images = self.images.to(self.device)
        self.finite_check_every = 1 if self.device.type == "cpu" else FINITE_CHECK_EVERY
        if self.compile_step:
            self._step_loss = compiled_step(self.step_loss, self.images)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        self._loss_sum = torch.zeros((), device=self.device)
        self._steps = 0
        self._first_bad_step = torch.full((), -1, device=self.device)

    # -- training ---------------------------------------------------------------------------------------
    def views(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independently augmented views of the images at ``indices`` (augmentation in float32).

        Both views are augmented in one call on the doubled batch (every image draws its own parameters): half
        the kernel launches and Python overhead, which bound the input path on a GPU.
        """
        x = to_float(self.images[indices.to(self.images.device)])
        with torch.autocast(self.device.type, enabled=False):
            view0, view1 = self.augment(torch.cat([x, x])).chunk(2)
        return view0, view1

    def step_loss(self, indices: torch.Tensor) -> torch.Tensor:
        """The capturable part of a step (``indices`` on the device): gather, augment both views, forward, loss.

        With ``compile_step`` it runs compiled (its backward too); it has no host sync and static shapes.
        """
        view0, view1 = self.views(indices)
        return self.method.loss(view0, view1)

    def training_step(self, indices: torch.Tensor, batch_idx: int) -> torch.Tensor:
        # Augmentation randomness depends only on (seed, step, rank): a resumed run draws the same views.
        torch.manual_seed(self.batches.seed * 1_000_003 + self.global_step * 7919 + self.global_rank)
        loss = self._step_loss(indices.to(self.images.device, non_blocking=True))
        self._note_non_finite(loss, batch_idx)
        if (batch_idx + 1) % self.finite_check_every == 0:
            self._raise_if_non_finite()
        self._loss_sum += loss.detach()
        self._steps += 1
        # The progress bar reads its values on the host every step: on a GPU that would stall the pipeline.
        self.log("loss", loss.detach(), prog_bar=self.device.type == "cpu")
        return loss

    def _note_non_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Remembers the epoch's first step with a non-finite loss, on the device (no host sync)."""
        first = (self._first_bad_step < 0) & ~torch.isfinite(loss.detach())
        self._first_bad_step = torch.where(first, batch_idx, self._first_bad_step)

    def _raise_if_non_finite(self) -> None:
        """Stops the run once a non-finite loss was seen (a host sync: every step on the CPU, else periodic)."""
        step = int(self._first_bad_step)
        if step < 0:
            return
        lr = self.optimizers().param_groups[0]["lr"]
        raise TrainingError(
            f"loss became non-finite at epoch {self.current_epoch} step {step} (lr {lr:.3g}); "
            "the learning rate is likely too high — lower --lr and rerun; the last good checkpoint is kept"
        )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        total = max(1, self.trainer.estimated_stepping_batches)
        self.method.on_step_end(min(1.0, self.global_step / total))

    # -- monitors ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, indices: np.ndarray, batch_size: int = 512) -> np.ndarray:
        encoder = self.method.encoder
        was_training = encoder.training
        encoder.eval()
        chunks = []
        for start in range(0, len(indices), batch_size):
            batch = torch.as_tensor(indices[start : start + batch_size], device=self.images.device)
            chunks.append(encoder(to_float(self.images[batch])).float().cpu())
        encoder.train(was_training)
        return torch.cat(chunks).numpy()

    def knn_accuracies(self, bank: np.ndarray, query: np.ndarray) -> dict[str, float]:
        """Validation kNN accuracy and balanced accuracy (mean recall over classes: fair on imbalanced data)."""
        from sklearn.metrics import balanced_accuracy_score

        from medssl.evaluate.knn import knn_scores

        n_classes = int(self.labels.max()) + 1
        scores = knn_scores(bank, self.labels[self.knn_bank], query, n_classes, k=self.knn_k)
        predicted, truth = scores.argmax(1), self.labels[self.split["val"]]
        return {
            "knn_accuracy": float((predicted == truth).mean()),
            "knn_balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
        }

    def on_train_epoch_end(self) -> None:
        self._raise_if_non_finite()  # before the epoch's checkpoint is written
        epoch = self.current_epoch
        seconds = time.perf_counter() - self._epoch_start
        images_per_s = self._steps * self.recipe.batch_size * self.trainer.world_size / max(seconds, 1e-9)
        loss = float(self.trainer.strategy.reduce(self._loss_sum / max(1, self._steps), reduce_op="mean"))
        row = {"epoch": epoch, "loss": loss, "images_per_s": images_per_s}
        row["lr"] = self.optimizers().param_groups[0]["lr"]
        if (epoch + 1) % self.knn_every == 0 or epoch + 1 == self.epochs:
            val = self.features(self.split["val"])
            row.update(self.knn_accuracies(self.features(self.knn_bank), val))
            row["embedding_std"] = embedding_std(val)
            row["effective_rank"] = effective_rank(val)
            self.log("val_knn_accuracy", row["knn_accuracy"], prog_bar=True, sync_dist=False)
            warning = collapse_warning(epoch, row["embedding_std"], row["effective_rank"])
            if warning:
                rank_zero_warn(warning)
        self._append_history(row)

    def _append_history(self, row: dict) -> None:
        if self.history_path is None or self.global_rank != 0:
            return
        rows = [r for r in read_history(self.history_path) if int(r["epoch"]) < row["epoch"]]
        previous_wall = float(rows[-1]["wall_s"]) if rows else 0.0
        row["wall_s"] = previous_wall + time.perf_counter() - self._epoch_start
        write_history(self.history_path, [*rows, {k: _fmt(v) for k, v in row.items()}])


def compiled_step(step: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> Callable:
    """``step`` under ``torch.compile``: on a GPU in ``reduce-overhead`` mode (CUDA graphs), with the image store
    marked static so that a replay reads it in place instead of copying it into the graph's inputs."""
    if images.device.type != "cuda":
        return torch.compile(step)
    torch._dynamo.mark_static_address(images)
    return torch.compile(step, mode="reduce-overhead")


def _fmt(value: float | int) -> str | int:
    if isinstance(value, int):
        return value
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"
