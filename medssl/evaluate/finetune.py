"""End-to-end fine-tuning of an ``Encoder`` plus a linear head with PyTorch Lightning.

Used for ImageNet fine-tuning (``imagenet:<bb>``), supervised training from scratch (``random:<bb>``) and
fine-tuning self-supervised encoders. The weights of the best validation epoch are kept (early stopping on
validation balanced accuracy by default), and the caller's encoder is never modified.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medssl.common.images import unit_float
from medssl.common.lightning import quiet_lightning_logs
from medssl.evaluate.metrics import balanced_accuracy
from medssl.models.encoder import Encoder

Monitor = Literal["val_balanced_accuracy", "val_loss"]


@dataclass
class FinetuneResult:
    """Test-set class probabilities of the best validation epoch."""

    test_prob: np.ndarray
    best_epoch: int
    epochs_run: int
    val_balanced_accuracy: float


def random_flips(x: torch.Tensor, vertical: bool = False) -> torch.Tensor:
    """Flip each image of a (B, C, H, W) batch left-right with probability ½ (and up-down if ``vertical``)."""
    mask = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
    x = torch.where(mask, x.flip(3), x)
    if vertical:
        mask = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
        x = torch.where(mask, x.flip(2), x)
    return x


class FineTuner(pl.LightningModule):
    """Encoder + linear head trained with cross-entropy on uint8 (B, H, W, C) batches."""

    def __init__(
        self,
        encoder: Encoder,
        n_classes: int,
        lr_backbone: float,
        lr_head: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weights: torch.Tensor | None = None,
        vertical_flips: bool = False,
        monitor: Monitor = "val_balanced_accuracy",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.feature_dim, n_classes)
        self.lr_backbone, self.lr_head, self.weight_decay = lr_backbone, lr_head, weight_decay
        self.vertical_flips = vertical_flips
        self.monitor = monitor
        self.register_buffer("class_weights", class_weights, persistent=False)
        self._val_logits: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_key: tuple[float, float] | None = None
        self.best_epoch = -1
        self.best_val_balanced_accuracy = float("nan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def _inputs(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        return unit_float(batch_uint8)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(random_flips(self._inputs(images), self.vertical_flips))
        loss = F.cross_entropy(logits, labels, weight=self.class_weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self._val_logits.append(self(self._inputs(images)).float())
        self._val_labels.append(labels)

    def on_validation_epoch_end(self) -> None:
        logits, labels = torch.cat(self._val_logits), torch.cat(self._val_labels)
        self._val_logits.clear()
        self._val_labels.clear()
        loss = float(F.cross_entropy(logits, labels, weight=self.class_weights))
        score = balanced_accuracy(labels.cpu().numpy(), logits.argmax(1).cpu().numpy())
        self.log("val_loss", loss)
        self.log("val_balanced_accuracy", score)
        key = (score, -loss) if self.monitor == "val_balanced_accuracy" else (-loss, score)
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch, self.best_val_balanced_accuracy = key, self.current_epoch, score
            self.best_state = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            [
                {"params": self.encoder.parameters(), "lr": self.lr_backbone},
                {"params": self.head.parameters(), "lr": self.lr_head},
            ],
            weight_decay=self.weight_decay,
        )


def _loader(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    dataset = TensorDataset(
        torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64))
    )
    generator = torch.Generator().manual_seed(seed)
    # A final batch of one image breaks batch norm on 1x1 feature maps: drop it (it changes every epoch).
    drop_last = shuffle and len(dataset) > batch_size and len(dataset) % batch_size == 1
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last
    )


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up banners and hints about data loader workers."""
    with quiet_lightning_logs(logging.ERROR), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers).*")
        warnings.filterwarnings("ignore", category=UserWarning, module="pytorch_lightning")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        yield


def default_backbone_lr(encoder: Encoder) -> float:
    """1e-3 for an untrained (random) encoder, 1e-4 for a pre-trained one (ImageNet or self-supervised)."""
    return 1e-3 if encoder.meta.get("method") == "random" else 1e-4


def predict_proba(
    model: nn.Module, images: np.ndarray, batch_size: int = 256, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Softmax probabilities of a classifier on (N, H, W, C) uint8 images."""
    model.eval().to(device)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunks.append(
                F.softmax(model(unit_float(images[start : start + batch_size], device=device)), 1).cpu()
            )
    return torch.cat(chunks).double().numpy()


def finetune(
    encoder: Encoder,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test_images: np.ndarray,
    n_classes: int,
    seed: int = 0,
    max_epochs: int = 30,
    patience: int = 5,
    batch_size: int = 64,
    lr_backbone: float | None = None,
    lr_head: float = 1e-3,
    class_weight: str | None = None,
    vertical_flips: bool = False,
    monitor: Monitor = "val_balanced_accuracy",
    device: str = "cpu",
) -> FinetuneResult:
    """Fine-tune a copy of ``encoder`` with a linear head; test probabilities of the best validation epoch.

    Args:
        encoder: starting weights (copied, never modified).
        train: (images (N, H, W, C) uint8, labels) used for gradient steps, with random flips.
        val: (images, labels) for early stopping and choosing the epoch.
        test_images: images to predict.
        n_classes: number of classes.
        seed: seeds the head, the batch order and the flips.
        max_epochs, patience: epoch budget and early-stopping patience (in epochs).
        lr_backbone: encoder learning rate (default: ``default_backbone_lr``); ``lr_head``: head learning rate.
        class_weight: ``"balanced"`` weights the loss inversely to the training class frequencies.
        vertical_flips: also flip up-down (histology); X-rays are only flipped left-right.
        monitor: early-stopping criterion.
        device: ``cpu`` or ``cuda``.
    """
    pl.seed_everything(seed, verbose=False)
    weights = None
    if class_weight == "balanced":
        counts = np.bincount(train[1], minlength=n_classes).astype(np.float64)
        weights = torch.tensor(len(train[1]) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    module = FineTuner(
        copy.deepcopy(encoder).train(),
        n_classes,
        default_backbone_lr(encoder) if lr_backbone is None else lr_backbone,
        lr_head,
        class_weights=weights,
        vertical_flips=vertical_flips,
        monitor=monitor,
    )
    stopper = EarlyStopping(
        monitor=monitor, mode="max" if monitor == "val_balanced_accuracy" else "min", patience=patience
    )
    with _quiet_lightning():
        trainer = pl.Trainer(
            accelerator="gpu" if str(device).startswith("cuda") else "cpu",
            devices=1,
            max_epochs=max_epochs,
            callbacks=[stopper],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(
            module,
            _loader(*train, min(batch_size, len(train[1])), shuffle=True, seed=seed),
            _loader(*val, 256, shuffle=False, seed=seed),
        )
    if module.best_state is not None:
        module.load_state_dict(module.best_state)
    test_prob = predict_proba(module, test_images, device=device)
    return FinetuneResult(
        test_prob, module.best_epoch, trainer.current_epoch, module.best_val_balanced_accuracy
    )
