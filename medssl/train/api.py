"""``pretrain``: in-domain self-supervised pre-training of one encoder, resumable, on CPU or GPUs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.trainer.states import TrainerStatus

from medssl.data.dataset import PreparedData, prepare_data
from medssl.errors import ConfigError, DataError, Interrupted
from medssl.methods.base import METHODS, build_method
from medssl.models.encoder import ENCODER_META, build_encoder, save_encoder
from medssl.train.augment import build_augment, detect_preset
from medssl.train.checkpoint import AtomicCheckpointIO
from medssl.train.config import PretrainConfig, Recipe, resolve_recipe
from medssl.train.loader import IndexBatches, index_loader
from medssl.train.module import PretrainModule
from medssl.train.monitors import read_history

LAST = "last.ckpt"


def _on_gpu(config: PretrainConfig) -> bool:
    return config.accelerator != "cpu" and torch.cuda.is_available()


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (Intel AMX), where bf16 autocast is ~1.8x faster."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def _precision(config: PretrainConfig) -> str:
    """``auto``: bf16 autocast on a GPU and on CPUs with native bf16 matrix units, otherwise 32-bit."""
    if config.precision != "auto":
        return config.precision
    return "bf16-mixed" if _on_gpu(config) or cpu_has_bf16_matmul() else "32-true"


def log_every_n_steps(steps_per_epoch: int) -> int:
    """Lightning's default logging interval (50 steps), at most one epoch: each log reads the loss on the host."""
    return max(1, min(50, steps_per_epoch))


def _batch_size(recipe: Recipe, n_train: int, world: int) -> int:
    if n_train < 2 * world:
        raise DataError(
            f"only {n_train} training images; self-supervised training needs at least {2 * world}"
        )
    if recipe.batch_size * world > n_train:
        fitted = n_train // world
        warnings.warn(
            f"batch size {recipe.batch_size} > {n_train} training images; using {fitted}", stacklevel=2
        )
        return fitted
    return recipe.batch_size


def build_module(
    config: PretrainConfig, data: PreparedData, out: Path | None, world: int = 1
) -> PretrainModule:
    """The Lightning module for ``config`` on ``data`` (no Trainer): usable from a notebook or a test."""
    if config.method not in METHODS:
        from medssl import methods  # noqa: F401  (fills METHODS)
    if config.method not in METHODS:
        raise ConfigError(f"method '{config.method}' is unknown; choose one of: {', '.join(METHODS)}")
    pl.seed_everything(config.seed, workers=True, verbose=False)
    recipe = resolve_recipe(config, METHODS[config.method].default_lr)
    n_train = len(data.split["train"])
    recipe = Recipe(**{**recipe.__dict__, "batch_size": _batch_size(recipe, n_train, world)})
    encoder = build_encoder(config.backbone, config.init)
    options = {"queue_size": max(recipe.batch_size, n_train // recipe.batch_size * recipe.batch_size)}
    method = build_method(
        config.method, encoder, gather_distributed=world > 1, **(options if config.method == "mocov2" else {})
    )
    method = method.to(memory_format=torch.channels_last)
    preset = config.augment if config.augment != "auto" else detect_preset(data.table.modality, data.channels)
    images = (
        torch.from_numpy(np.array(data.images)).permute(0, 3, 1, 2).contiguous()
    )  # RAM copy of the memmap
    train = torch.as_tensor(data.split["train"], dtype=torch.long)
    batches = IndexBatches(train, recipe.batch_size, config.seed)
    module = PretrainModule(
        method,
        build_augment(preset, data.image_size, data.channels, backend=config.augment_backend),
        images,
        data.labels,
        data.split,
        batches,
        recipe,
        config.epochs,
        knn_k=config.knn_k,
        knn_every=config.knn_every,
        knn_bank_size=config.knn_bank_size,
        history_path=out / "history.csv" if out else None,
        compile_step=config.compile,
    )
    module.augment_preset = preset
    return module


class _ShardBatches(pl.Callback):
    """With several processes, give each rank its share of every epoch's batches."""

    def on_fit_start(self, trainer: pl.Trainer, module: PretrainModule) -> None:
        module.batches.rank, module.batches.world = trainer.global_rank, trainer.world_size


def _trainer(
    config: PretrainConfig, out: Path, callbacks: list[pl.Callback], steps_per_epoch: int
) -> pl.Trainer:
    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="best",
        monitor="val_knn_accuracy",
        mode="max",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    return pl.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy="ddp" if config.devices > 1 else "auto",
        sync_batchnorm=config.devices > 1 and _on_gpu(config),
        precision=_precision(config),
        logger=[CSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="logs", version="")],
        callbacks=[checkpoints, _ShardBatches(), *callbacks],
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_train_batches=config.max_steps_per_epoch or 1.0,
        log_every_n_steps=log_every_n_steps(steps_per_epoch),
    )


def _check_out(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None; refuses to overwrite a run unless resuming."""
    last = out / "checkpoints" / LAST
    if last.exists() and not resume:
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
    return last if resume and last.exists() else None


def pretrain(
    config: PretrainConfig,
    out: str | Path,
    data: PreparedData | None = None,
    resume: bool = False,
    callbacks: list[pl.Callback] | None = None,
) -> Path:
    """Pre-train ``config.method`` and write ``out/encoder.pt`` + ``encoder.json``; returns ``out``.

    ``data`` (already prepared, e.g. shared by a study) is used as given; otherwise it is prepared from
    ``config.data`` and its split saved in ``out/split.csv``. ``resume`` continues from ``out/checkpoints/last.ckpt``;
    ``callbacks`` are extra Lightning callbacks.
    """
    out = Path(out)
    ckpt = _check_out(out, resume)
    if ckpt is None and (out / ENCODER_META).exists() and resume:
        return out
    out.mkdir(parents=True, exist_ok=True)
    data = data or prepare_data(config.data, run_dir=out)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    module = build_module(config, data, out, world=config.devices)
    steps_per_epoch = min(len(module.batches), config.max_steps_per_epoch or len(module.batches))
    trainer = _trainer(config, out, callbacks or [], steps_per_epoch)
    try:
        trainer.fit(module, train_dataloaders=index_loader(module.batches), ckpt_path=ckpt, weights_only=True)
    except SystemExit:
        if trainer.state.status == TrainerStatus.INTERRUPTED:
            raise Interrupted(
                f"interrupted in epoch {trainer.current_epoch}; the last completed epoch is saved in "
                f"{out / 'checkpoints' / LAST}; rerun the same command with --resume to continue"
            ) from None
        raise
    if trainer.global_rank == 0:
        _export(module, config, data, out)
    return out


def _export(module: PretrainModule, config: PretrainConfig, data: PreparedData, out: Path) -> None:
    history = read_history(out / "history.csv")
    final = next((row for row in reversed(history) if row.get("knn_accuracy")), {})
    save_encoder(
        module.method.encoder,
        out,
        method=config.method,
        init=config.init,
        recipe=module.recipe.__dict__,
        image_size=data.image_size,
        channels=data.channels,
        augment=module.augment_preset,
        data_fingerprint=data.fingerprint,
        dataset=data.name,
        seed=config.seed,
        epochs=config.epochs,
        knn_accuracy=float(final["knn_accuracy"]) if final else None,
    )
    (out / "summary.json").write_text(json.dumps({"history_rows": len(history), **final}, indent=2))
