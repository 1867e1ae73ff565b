"""Pre-training end to end on tiny synthetic data: outputs, exact resume, monitors and training faults."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from medssl import load_encoder
from medssl.errors import TrainingError
from medssl.evaluate.features import extract_features
from medssl.models.backbones import build_backbone
from medssl.train.api import pretrain
from medssl.train.config import PretrainConfig

from ..conftest import tiny_config


def config(cache: Path, **overrides) -> PretrainConfig:
    base = {"epochs": 2, "batch_size": 32, "progress_bar": False, "knn_k": 20}
    return PretrainConfig(**{**base, **overrides}, data=tiny_config(cache))


class StopAfterFirstEpoch(pl.Callback):
    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        trainer.should_stop = True


def history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_pretrain_writes_a_loadable_encoder(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    run = pretrain(config(pixel_cache), tmp_path / "run", data=tiny_data)
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for column in ("loss", "knn_accuracy", "embedding_std", "effective_rank", "images_per_s"):
        assert float(rows[-1][column]) > 0
    encoder = load_encoder(run)
    assert encoder.meta["method"] == "simclr" and encoder.meta["image_size"] == 32
    assert encoder.meta["data_fingerprint"] == tiny_data.fingerprint
    features = extract_features(encoder, tiny_data.images[:8])
    assert features.shape == (8, 512) and np.isfinite(features).all()
    assert (run / "checkpoints" / "last.ckpt").exists() and (run / "checkpoints" / "best.ckpt").exists()


def test_stopped_then_resumed_run_equals_uninterrupted(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    cfg = config(pixel_cache, method="byol")
    whole = pretrain(cfg, tmp_path / "whole", data=tiny_data)
    part = pretrain(cfg, tmp_path / "part", data=tiny_data, callbacks=[StopAfterFirstEpoch()])
    assert len(history(part)) == 1
    resumed = pretrain(cfg, tmp_path / "part", data=tiny_data, resume=True)
    a = torch.load(whole / "encoder.pt", weights_only=True)
    b = torch.load(resumed / "encoder.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda run: [r["loss"] for r in history(run)]  # noqa: E731
    assert losses(whole) == losses(resumed)


def test_rerun_without_resume_refuses_to_overwrite(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    from medssl.errors import ConfigError

    cfg = config(pixel_cache, epochs=1, max_steps_per_epoch=1)
    pretrain(cfg, tmp_path / "run", data=tiny_data)
    with pytest.raises(ConfigError, match="--resume"):
        pretrain(cfg, tmp_path / "run", data=tiny_data)


class CollapseEncoder(pl.Callback):
    """Zero every backbone weight just before the epoch's monitors run: features become constant."""

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        with torch.no_grad():
            for parameter in module.method.encoder.backbone.parameters():
                parameter.zero_()


def test_collapse_warning_names_the_epoch(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    cfg = config(pixel_cache, epochs=1, max_steps_per_epoch=1)
    with pytest.warns(UserWarning, match="embedding collapse at epoch 0"):
        pretrain(cfg, tmp_path / "run", data=tiny_data, callbacks=[CollapseEncoder()])


class PoisonWeights(pl.Callback):
    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                module.method.encoder.backbone.conv1.weight.fill_(float("nan"))


def test_nan_loss_stops_with_a_message_and_keeps_last_good_checkpoint(
    tmp_path: Path, pixel_cache: Path, tiny_data
) -> None:
    cfg = config(pixel_cache, epochs=3, max_steps_per_epoch=2)
    with pytest.raises(TrainingError, match="learning rate"):
        pretrain(cfg, tmp_path / "run", data=tiny_data, callbacks=[PoisonWeights()])
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


class DeferFiniteChecks(pl.Callback):
    """The GPU's schedule on the CPU: the loss is read on the host only at the end of each epoch."""

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:  # after on_fit_start
        from medssl.train.monitors import FiniteLoss

        next(c for c in trainer.callbacks if isinstance(c, FiniteLoss)).every = 10**9


def test_nan_seen_between_periodic_checks_still_stops_before_the_checkpoint(
    tmp_path: Path, pixel_cache: Path, tiny_data
) -> None:
    cfg = config(pixel_cache, epochs=3, max_steps_per_epoch=2)
    with pytest.raises(TrainingError, match="non-finite at epoch 1 step 0"):
        pretrain(cfg, tmp_path / "run", data=tiny_data, callbacks=[PoisonWeights(), DeferFiniteChecks()])
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_validation_knn_scores_include_balanced_accuracy(tiny_data) -> None:
    from medssl.train.monitors import knn_accuracies

    labels = tiny_data.labels
    bank_labels, val_labels = labels[tiny_data.split["train"]], labels[tiny_data.split["val"]]
    n_classes = int(labels.max()) + 1
    bank = np.eye(n_classes)[bank_labels]
    perfect = knn_accuracies(bank, bank_labels, np.eye(n_classes)[val_labels], val_labels, k=20)
    assert perfect == {"knn_accuracy": 1.0, "knn_balanced_accuracy": 1.0}
    one_class = np.ones((len(val_labels), n_classes))  # every query is as near to every class
    scores = knn_accuracies(bank, bank_labels, one_class, val_labels, k=20)
    shares = [np.mean(val_labels == c) for c in range(n_classes)]
    assert any(scores["knn_accuracy"] == pytest.approx(share) for share in shares)
    assert scores["knn_balanced_accuracy"] == pytest.approx(1 / len(np.unique(val_labels)))


def test_imagenet_init_then_in_domain_ssl(tmp_path: Path, pixel_cache: Path, tiny_data) -> None:
    imagenet = build_backbone("efficientnet_lite0", "imagenet").state_dict()
    cfg = config(pixel_cache, backbone="efficientnet_lite0", init="imagenet", epochs=1, max_steps_per_epoch=2)
    run = pretrain(cfg, tmp_path / "run", data=tiny_data)
    trained = torch.load(run / "encoder.pt", weights_only=True)
    assert load_encoder(run).meta["init"] == "imagenet"
    conv = "net._conv_stem.weight"
    assert not torch.equal(trained[conv], imagenet[conv])
    assert (
        torch.nn.functional.cosine_similarity(trained[conv].flatten(), imagenet[conv].flatten(), dim=0) > 0.9
    )
