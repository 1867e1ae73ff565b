"""What pre-training watches, as Lightning callbacks: non-finite losses, the validation kNN monitor with the
embedding's health (spread, effective rank, collapse), and ``history.csv`` (``medssl.rundir.history``).

Callbacks run their ``on_train_epoch_end`` before the checkpoint callbacks, so a NaN stops a run before that
epoch's checkpoint is written, and the kNN score is logged in time for ``best.ckpt``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from sklearn.metrics import balanced_accuracy_score

from medssl.common.images import unit_float
from medssl.common.knn import knn_scores
from medssl.errors import TrainingError
from medssl.rundir.history import history_row, read_history, write_history

FINITE_CHECK_EVERY = 50
"""On a GPU the loss is checked for NaN/inf on the host every this many steps and at each epoch's end (on the
CPU, where reading it costs nothing, every step)."""

COLLAPSE_STD = 0.05
COLLAPSE_RANK = 2.0


def embedding_std(features: np.ndarray) -> float:
    """Std of L2-normalised features per dimension, times sqrt(dim): ~1 when spread out, 0 when collapsed."""
    x = torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float64), dim=1)
    return float(x.std(dim=0).mean() * math.sqrt(x.shape[1]))


def effective_rank(features: np.ndarray) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values; 1 ≤ rank ≤ min(N, D)."""
    s = torch.linalg.svdvals(torch.as_tensor(features, dtype=torch.float64))
    p = s / s.sum().clamp_min(1e-12) + 1e-12
    return float(torch.exp(-(p * p.log()).sum()))


def collapse_warning(epoch: int, std: float, rank: float) -> str | None:
    """A message when the embedding has collapsed (std or effective rank near zero), else None."""
    if std < COLLAPSE_STD or rank < COLLAPSE_RANK:
        return (
            f"embedding collapse at epoch {epoch}: std {std:.3f}, effective rank {rank:.2f}; "
            "try a lower learning rate, another method, or stronger augmentation"
        )
    return None


class FiniteLoss(pl.Callback):
    """Stops training at a non-finite loss with a message, before that epoch's checkpoint is written.

    The first bad step is remembered on the device (no host sync); it is read on the host every ``every``
    steps (1 on a CPU, ``FINITE_CHECK_EVERY`` on a GPU) and at each epoch's end.
    """

    def __init__(self) -> None:
        self.every = 1
        self.first_bad_step = torch.full((), -1)

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.every = 1 if module.device.type == "cpu" else FINITE_CHECK_EVERY

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.first_bad_step = torch.full((), -1, device=module.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        first = (self.first_bad_step < 0) & ~torch.isfinite(outputs["loss"].detach())
        self.first_bad_step = torch.where(first, batch_idx, self.first_bad_step)
        if (batch_idx + 1) % self.every == 0:
            self.raise_if_seen(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.raise_if_seen(trainer)

    def raise_if_seen(self, trainer: pl.Trainer) -> None:
        step = int(self.first_bad_step)
        if step < 0:
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        raise TrainingError(
            f"loss became non-finite at epoch {trainer.current_epoch} step {step} (lr {lr:.3g}); "
            "the learning rate is likely too high — lower --lr and rerun; the last good checkpoint is kept"
        )


@torch.no_grad()
def encode(module: pl.LightningModule, indices: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Features of the stored images at ``indices`` from ``module.method.trained_encoder`` in eval mode."""
    encoder, images = module.method.trained_encoder, module.images
    was_training = encoder.training
    encoder.eval()
    chunks = []
    for start in range(0, len(indices), batch_size):
        batch = torch.as_tensor(indices[start : start + batch_size], device=images.device)
        chunks.append(encoder(unit_float(images[batch], "nchw")).float().cpu())
    encoder.train(was_training)
    return torch.cat(chunks).numpy()


def knn_accuracies(
    bank: np.ndarray, bank_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray, k: int
) -> dict[str, float]:
    """kNN accuracy and balanced accuracy (mean recall over classes: fair on imbalanced data) of ``query``."""
    n_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    predicted = knn_scores(bank, bank_labels, query, n_classes, k=k).argmax(1)
    return {
        "knn_accuracy": float((predicted == query_labels).mean()),
        "knn_balanced_accuracy": float(balanced_accuracy_score(query_labels, predicted)),
    }


class ValidationKNN(pl.Callback):
    """Every ``every`` epochs (and the last): kNN accuracy of the validation images against a bank of training
    images, the embedding's spread and effective rank, and a collapse warning. Logs ``val_knn_accuracy``."""

    def __init__(
        self, labels: np.ndarray, split: dict, k: int, every: int, bank_size: int, epochs: int
    ) -> None:
        self.labels, self.k, self.every, self.epochs = labels, k, every, epochs
        self.bank, self.val = split["train"][:bank_size], split["val"]
        self.latest: dict[str, float] = {}
        """This epoch's figures (empty in epochs without the monitor)."""

    def measure(self, module: pl.LightningModule) -> dict[str, float]:
        val = encode(module, self.val)
        row = knn_accuracies(
            encode(module, self.bank), self.labels[self.bank], val, self.labels[self.val], self.k
        )
        return {**row, "embedding_std": embedding_std(val), "effective_rank": effective_rank(val)}

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        self.latest = {}
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return
        self.latest = self.measure(module)
        module.log("val_knn_accuracy", self.latest["knn_accuracy"], prog_bar=True, sync_dist=False)
        warning = collapse_warning(epoch, self.latest["embedding_std"], self.latest["effective_rank"])
        if warning:
            rank_zero_warn(warning)


class EpochHistory(pl.Callback):
    """One ``history.csv`` row per epoch: mean loss, the kNN monitor's figures, images/s, lr, wall time.

    The loss is summed on the device and read once per epoch. A resumed run keeps the rows of the epochs it
    does not redo.
    """

    def __init__(self, path: Path, batch_size: int, knn: ValidationKNN) -> None:
        self.path, self.batch_size, self.knn = path, batch_size, knn
        self.start = self.last_step = 0.0
        self.steps, self.loss_sum = 0, torch.zeros(())

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = self.last_step = time.perf_counter()
        self.steps, self.loss_sum = 0, torch.zeros((), device=module.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        self.loss_sum += outputs["loss"].detach()
        self.steps += 1
        self.last_step = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        training_seconds = self.last_step - self.start  # images/s of the steps alone, without the monitor
        seconds = time.perf_counter() - self.start
        loss = trainer.strategy.reduce(self.loss_sum / max(1, self.steps), reduce_op="mean")
        if trainer.global_rank != 0:
            return
        epoch = trainer.current_epoch
        rows = [r for r in read_history(self.path) if int(r["epoch"]) < epoch]
        row = {
            "epoch": epoch,
            "loss": float(loss),
            **self.knn.latest,
            "images_per_s": self.steps * self.batch_size * trainer.world_size / max(training_seconds, 1e-9),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "wall_s": (float(rows[-1]["wall_s"]) if rows else 0.0) + seconds,
        }
        write_history(self.path, [*rows, history_row(row)])
