"""SwAV: prototypes sized to the training set, frozen in the first epoch and kept on the unit sphere; a queue of
earlier batches that joins the codes once full."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from medssl.methods import METHODS
from medssl.methods.base import Views
from medssl.models import build_encoder
from medssl.train.api import pretrain
from medssl.train.config import PretrainConfig

from ..conftest import tiny_config


@pytest.mark.parametrize(
    ("n_train", "batch", "prototypes", "queue_batches"),
    [(9469, 128, 3000, 15), (1000, 128, 333, 6), (400, 128, 133, 2), (200, 128, 66, 0), (30, 16, 16, 0)],
)
def test_prototypes_and_queue_are_sized_to_the_training_set(
    n_train: int, batch: int, prototypes: int, queue_batches: int
) -> None:
    method = METHODS["swav"].for_training_set(build_encoder("resnet18"), n_train, batch)
    assert method.prototypes.n_prototypes == [prototypes]
    assert method.queue.shape == (2, queue_batches * batch, 128)


class PrototypeRecorder(pl.Callback):
    """The prototypes before training and at the end of every epoch."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.weights.append(module.method.prototypes.heads[0].weight.detach().clone())

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.on_train_start(trainer, module)


def test_prototypes_are_frozen_in_the_first_epoch_and_stay_on_the_unit_sphere(
    tmp_path: Path, pixel_cache: Path, tiny_data
) -> None:
    cfg = PretrainConfig(
        method="swav",
        epochs=2,
        batch_size=32,
        max_steps_per_epoch=2,
        knn_every=5,
        progress_bar=False,
        data=tiny_config(pixel_cache),
    )
    recorder = PrototypeRecorder()
    pretrain(cfg, tmp_path / "run", data=tiny_data, callbacks=[recorder])
    start, first, second = recorder.weights
    for weights in (start, first, second):
        torch.testing.assert_close(weights.norm(dim=1), torch.ones(len(weights)))
    torch.testing.assert_close(first, start, atol=1e-6, rtol=0)  # two steps, no update
    assert (second - first).abs().max() > 1e-4  # the second epoch trains them


def test_the_queue_joins_the_codes_once_full_and_holds_the_latest_projections() -> None:
    torch.manual_seed(0)
    method = METHODS["swav"](build_encoder("resnet18"), prototypes=32, queue_batches=2, batch_size=8)
    views = Views(
        tuple(torch.rand(8, 3, 32, 32) for _ in range(2)), tuple(torch.rand(8, 3, 16, 16) for _ in range(6))
    )
    seen = []
    for step in range(3):
        with torch.no_grad():
            method.training_loss(views)
        seen.append(method.use_queue)
        method.on_step_end(progress=0.2 + step / 10)
    assert seen == [False, False, True]  # full after two batches of 8, and past 10 % of training
    assert method.get_extra_state() == {"steps": 3, "use_queue": True}
    newest = method.project(views.global_crops)
    torch.testing.assert_close(method.queue[:, :8], torch.stack(newest).detach())
    torch.testing.assert_close(method.queue.norm(dim=2), torch.ones(2, 16))
    early = METHODS["swav"](build_encoder("resnet18"), prototypes=32, queue_batches=2, batch_size=8)
    early.steps = 5
    early.on_step_end(progress=0.05)
    assert not early.use_queue  # full, but before 10 % of training
