"""Checkpoints never go stale: ``last.ckpt`` holds the latest epoch whatever the kNN monitor does.

Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when its top-k checkpoint is written
in the same step, i.e. when the monitored metric improved. These tests make the monitor get worse (or not run)
on purpose, so they fail on that behaviour on every CPU and in both precisions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from medssl.data import prepare_data
from medssl.train import monitors
from medssl.train.api import pretrain
from medssl.train.config import PretrainConfig

from ..conftest import PRECISIONS, tiny_config


def config(cache: Path, precision: str, **overrides) -> PretrainConfig:
    base = {"epochs": 3, "batch_size": 32, "progress_bar": False, "knn_k": 20, "max_steps_per_epoch": 2}
    return PretrainConfig(**{**base, **overrides}, precision=precision, data=tiny_config(cache))


@pytest.fixture
def worsening_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation kNN accuracy that falls every epoch: 1.0, 0.5, 0.33, ..."""

    calls = []

    def knn_accuracies(*args, **kwargs) -> dict[str, float]:
        calls.append(1)
        score = 1.0 / len(calls)
        return {"knn_accuracy": score, "knn_balanced_accuracy": score}

    monkeypatch.setattr(monitors, "knn_accuracies", knn_accuracies)


class StopAfterEpoch(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


class RecordEpochs(pl.Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.epochs.append(trainer.current_epoch)


def saved_epoch(run: Path, name: str) -> int:
    return int(torch.load(run / "checkpoints" / name, weights_only=True)["epoch"])


def history_epochs(run: Path) -> list[int]:
    with (run / "history.csv").open() as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_last_checkpoint_is_the_latest_epoch_when_the_monitor_gets_worse(
    tmp_path: Path, pixel_cache: Path, tiny_data, worsening_monitor, precision: str
) -> None:
    run = pretrain(config(pixel_cache, precision), tmp_path / "run", data=tiny_data)
    assert saved_epoch(run, "last.ckpt") == 2
    assert saved_epoch(run, "best.ckpt") == 0


@pytest.mark.parametrize("precision", PRECISIONS)
def test_last_checkpoint_exists_after_every_epoch_when_the_monitor_does_not_run(
    tmp_path: Path, pixel_cache: Path, tiny_data, precision: str
) -> None:
    cfg = config(pixel_cache, precision, knn_every=3)
    run = pretrain(cfg, tmp_path / "run", data=tiny_data, callbacks=[StopAfterEpoch(1)])
    assert saved_epoch(run, "last.ckpt") == 1
    assert not (run / "checkpoints" / "best.ckpt").exists()


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_stopped_run_resumes_from_its_latest_epoch_and_ends_equal(
    tmp_path: Path, pixel_cache: Path, tiny_data, worsening_monitor, precision: str
) -> None:
    cfg = config(pixel_cache, precision)
    whole = pretrain(cfg, tmp_path / "whole", data=tiny_data)
    part = pretrain(cfg, tmp_path / "part", data=tiny_data, callbacks=[StopAfterEpoch(1)])
    assert history_epochs(part) == [0, 1]
    trained = RecordEpochs()
    resumed = pretrain(cfg, part, data=tiny_data, resume=True, callbacks=[trained])
    assert trained.epochs == [2], "the resumed run redid epochs that had finished"
    assert history_epochs(resumed) == [0, 1, 2]
    a = torch.load(whole / "encoder.pt", weights_only=True)
    b = torch.load(resumed / "encoder.pt", weights_only=True)
    assert all(torch.equal(a[key], b[key]) for key in a)


class CountSteps(pl.Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, *args) -> None:
        self.steps += 1


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_stopped_step_budget_run_resumes_its_remaining_steps_and_ends_equal(
    tmp_path: Path, pixel_cache: Path, tiny_data, precision: str
) -> None:
    """Under a step budget Lightning treats every resume as a restart inside an epoch; the run must still
    redo nothing, finish its budget and keep an honest history."""
    import json
    import time

    cfg = config(pixel_cache, precision, steps=6, knn_every=100)
    whole = pretrain(cfg, tmp_path / "whole", data=tiny_data)
    started = time.perf_counter()
    part = pretrain(cfg, tmp_path / "part", data=tiny_data, callbacks=[StopAfterEpoch(1)])
    counted = CountSteps()
    resumed = pretrain(cfg, part, data=tiny_data, resume=True, callbacks=[counted])
    elapsed = time.perf_counter() - started
    assert counted.steps == 2, "the resumed run redid steps that had finished"
    assert json.loads((resumed / "encoder.json").read_text())["steps"] == 6
    assert history_epochs(resumed) == [0, 1, 2]
    with (resumed / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    walls = [float(row["wall_s"]) for row in rows]
    assert walls == sorted(walls) and walls[-1] < elapsed  # no clock jump at the resumed epoch
    assert all(float(row["images_per_s"]) > 1 for row in rows)
    a = torch.load(whole / "encoder.pt", weights_only=True)
    b = torch.load(resumed / "encoder.pt", weights_only=True)
    assert all(torch.equal(a[key], b[key]) for key in a)


@pytest.fixture(scope="module")
def data_64px(pixel_cache: Path):
    return prepare_data(tiny_config(pixel_cache, size=64))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", ["swav", "dino"])
def test_a_stopped_multi_crop_run_resumes_with_its_whole_state_and_ends_equal(
    tmp_path: Path, pixel_cache: Path, data_64px, method: str, precision: str
) -> None:
    """Everything beside the encoder is in ``last.ckpt``: SwAV's prototypes, queue and its step count (the
    queue is in use from the 3rd of 6 steps), DINO's teacher, centre and temperature.

    At 64 px: on 32 px images the 16 px local crops reach ResNet's last stage at 1x1, where the CPU's bf16
    convolution backward is not deterministic (two identical steps differ by ~1e-4 of the gradient), so not
    even two uninterrupted runs would be equal.
    """
    cfg = config(pixel_cache, precision, method=method, knn_every=100)
    cfg = cfg.model_copy(update={"data": tiny_config(pixel_cache, size=64)})
    whole = pretrain(cfg, tmp_path / "whole", data=data_64px)
    part = pretrain(cfg, tmp_path / "part", data=data_64px, callbacks=[StopAfterEpoch(1)])
    resumed = pretrain(cfg, part, data=data_64px, resume=True)
    a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    special = {
        "swav": ["method.queue", "method.prototypes.heads.0.weight"],
        "dino": ["method.criterion.center"],
    }
    special["dino"] += [key for key in a if key.startswith("method.momentum_")]
    assert set(special[method]) <= a.keys() and a["method._extra_state"] == b["method._extra_state"]
    if method == "swav":
        assert (
            a["method._extra_state"] == {"steps": 6, "use_queue": True} and a["method.queue"].abs().sum() > 0
        )
    for key, value in a.items():
        assert key == "method._extra_state" or torch.equal(value, b[key]), key


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_stopped_mae_run_resumes_and_ends_equal(
    tmp_path: Path, pixel_cache: Path, tiny_data, precision: str
) -> None:
    """MAE on ViT-Tiny: the decoder and the frozen position embeddings are in ``last.ckpt`` beside the encoder,
    and a resumed run draws the same views and masks, so it ends where the uninterrupted one does."""
    cfg = config(pixel_cache, precision, method="mae", backbone="vit_tiny_p4", batch_size=16, knn_every=100)
    whole = pretrain(cfg, tmp_path / "whole", data=tiny_data)
    part = pretrain(cfg, tmp_path / "part", data=tiny_data, callbacks=[StopAfterEpoch(1)])
    assert saved_epoch(part, "last.ckpt") == 1
    resumed = pretrain(cfg, part, data=tiny_data, resume=True)
    a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and {"method.decoder.pos_embed", "method.predict.weight"} <= a.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key
