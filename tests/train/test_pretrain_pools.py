"""Pre-training on a pool of the training images under a constant step budget; evaluation data untouched."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from medssl.data.pools import pretrain_pool
from medssl.train.api import build_module, monitor_callbacks, pretrain
from medssl.train.config import PretrainConfig

from ..conftest import tiny_config

STEPS = 7
BATCH = 16


class CountOptimiserSteps(pl.Callback):
    """Counts the optimiser steps really taken (Lightning calls this hook before each one)."""

    def __init__(self) -> None:
        self.steps = 0

    def on_before_optimizer_step(self, trainer: pl.Trainer, module: pl.LightningModule, optimizer) -> None:
        self.steps += 1


def config(cache: Path, **overrides) -> PretrainConfig:
    base = {"batch_size": BATCH, "progress_bar": False, "knn_k": 10, "accelerator": "cpu"}
    return PretrainConfig(**{**base, **overrides}, data=tiny_config(cache))


def test_pool_changes_only_what_pretraining_sees(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    full_config, half_config = config(pixel_cache), config(pixel_cache, pool_fraction=0.5)
    full, half = build_module(full_config, tiny_data), build_module(half_config, tiny_data)
    full_knn = monitor_callbacks(full_config, tiny_data, full, tmp_path)[1]
    half_knn = monitor_callbacks(half_config, tiny_data, half, tmp_path)[1]
    pool = pretrain_pool(tiny_data.table, tiny_data.split["train"], 0.5, seed=0)
    assert np.array_equal(full.batches.indices.numpy(), tiny_data.split["train"])
    assert np.array_equal(half.batches.indices.numpy(), pool.indices)
    assert set(pool.indices) < set(tiny_data.split["train"])
    # The monitor's kNN bank and validation images, and the split itself, are the same for both pools.
    assert np.array_equal(half_knn.bank, full_knn.bank)
    assert np.array_equal(half_knn.val, full_knn.val)
    assert np.array_equal(half_knn.bank, tiny_data.split["train"][: full_config.knn_bank_size])
    drawn = {int(i) for batch in half.batches for i in batch}
    assert drawn <= set(pool.indices.tolist())


def test_step_budget_is_the_same_for_every_pool(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    seen = {}
    for fraction in (0.25, 0.5, 1.0):
        counter = CountOptimiserSteps()
        cfg = config(pixel_cache, steps=STEPS, pool_fraction=fraction, knn_every=2)
        run = pretrain(cfg, tmp_path / f"p{fraction}", data=tiny_data, callbacks=[counter])
        meta = json.loads((run / "encoder.json").read_text())
        batches_per_epoch = meta["pool_images"] // BATCH
        assert counter.steps == STEPS == meta["steps"]
        assert meta["epochs"] == math.ceil(STEPS / batches_per_epoch)
        assert meta["images_seen"] == STEPS * BATCH
        assert meta["pool_fraction"] == fraction
        seen[fraction] = meta
    assert seen[0.25]["pool_images"] < seen[0.5]["pool_images"] < seen[1.0]["pool_images"]
    assert seen[0.25]["epochs"] > seen[0.5]["epochs"] > seen[1.0]["epochs"]
    assert seen[1.0]["pool_images"] == len(tiny_data.split["train"])


def test_epoch_budget_records_the_steps_it_took(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    counter = CountOptimiserSteps()
    cfg = config(pixel_cache, epochs=2, max_steps_per_epoch=2, pool_fraction=0.5)
    run = pretrain(cfg, tmp_path / "run", data=tiny_data, callbacks=[counter])
    meta = json.loads((run / "encoder.json").read_text())
    assert counter.steps == meta["steps"] == 4 and meta["epochs"] == 2
    assert meta["pool_images"] == len(pretrain_pool(tiny_data.table, tiny_data.split["train"], 0.5).indices)
    assert torch.load(run / "encoder.pt", weights_only=True)
