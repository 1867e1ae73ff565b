"""``pretrain``: in-domain self-supervised pre-training of one encoder, resumable, on CPU or GPUs."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import get_args

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.trainer.states import TrainerStatus

from medssl.common.augment import detect_preset
from medssl.common.lightning import quiet_lightning_logs
from medssl.data.dataset import PreparedData, prepare_data
from medssl.data.pools import Pool, pretrain_pool
from medssl.errors import ConfigError, DataError, Interrupted
from medssl.methods import method_class, method_problems
from medssl.models.encoder import ENCODER_META, build_encoder, save_encoder
from medssl.models.specs import backbone_problems
from medssl.rundir.atomic import remove_stale_temps, write_text
from medssl.rundir.data_record import DataChanged
from medssl.rundir.encoder_meta import recorded_settings
from medssl.rundir.history import HISTORY, read_history
from medssl.rundir.paths import START_OVER, check_apart, check_out, check_writable
from medssl.rundir.settings import (
    SETTINGS,
    changed_common,
    pretrain_settings,
    read_registry,
    record_settings,
    refuse_changed,
    settings_key,
)
from medssl.train.checkpoint import AtomicCheckpointIO
from medssl.train.config import PretrainConfig, Recipe, plan_epochs, resolve_recipe
from medssl.train.loader import IndexBatches, index_loader
from medssl.train.module import PretrainModule
from medssl.train.monitors import EpochHistory, FiniteLoss, ValidationKNN
from medssl.train.views import view_augments

LAST = "last.ckpt"


def _on_gpu(config: PretrainConfig) -> bool:
    return config.accelerator != "cpu" and torch.cuda.is_available()


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (Intel AMX), where bf16 autocast is ~1.8x faster."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


PRECISION_ENV = "MEDSSL_PRECISION"
"""Environment variable naming what ``precision: auto`` resolves to (``32-true`` or ``bf16-mixed``): forces one
numeric path on any machine, e.g. the 32-bit path of CPUs without AMX on a machine that has it (CI does)."""


def _precision(config: PretrainConfig) -> str:
    """``auto``: bf16 autocast on a GPU and on CPUs with native bf16 matrix units, otherwise 32-bit."""
    if config.precision != "auto":
        return config.precision
    forced = os.environ.get(PRECISION_ENV, "").strip()
    if forced:
        allowed = [p for p in get_args(PretrainConfig.model_fields["precision"].annotation) if p != "auto"]
        if forced not in allowed:
            raise ConfigError(
                f"{PRECISION_ENV}={forced} is not a precision; use one of: {', '.join(allowed)}"
            )
        return forced
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


def build_module(config: PretrainConfig, data: PreparedData, world: int = 1) -> PretrainModule:
    """The Lightning module for ``config`` on ``data`` (no Trainer): usable from a notebook or a test."""
    method_type = method_class(config.method)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    pool = pretrain_pool(data.table, data.split["train"], config.pool_fraction, seed=config.seed)
    if pool.note:
        warnings.warn(pool.note, stacklevel=2)
    n_train = pool.n_images
    batch_size = _batch_size(resolve_recipe(config, method_type.default_lr), n_train, world)
    epochs = plan_epochs(config, n_train // (batch_size * world))
    recipe = resolve_recipe(config.model_copy(update={"epochs": epochs}), method_type.default_lr)
    recipe = Recipe(**{**recipe.__dict__, "batch_size": batch_size})
    encoder = build_encoder(config.backbone, config.init)
    method = method_type.for_training_set(encoder, n_train, recipe.batch_size, gather_distributed=world > 1)
    method = method.to(memory_format=torch.channels_last)
    preset = config.augment if config.augment != "auto" else detect_preset(data.table.modality, data.channels)
    images = (
        torch.from_numpy(np.array(data.images)).permute(0, 3, 1, 2).contiguous()
    )  # RAM copy of the memmap
    train = torch.as_tensor(pool.indices, dtype=torch.long)
    batches = IndexBatches(train, recipe.batch_size, config.seed)
    augment, local_augment = view_augments(
        preset, data.image_size, data.channels, method.view_plan, backend=config.augment_backend
    )
    module = PretrainModule(
        method,
        augment,
        images,
        batches,
        recipe,
        epochs,
        compile_step=config.compile,
        step_budget=config.steps,
        local_augment=local_augment,
    )
    module.augment_preset = preset
    module.pool = pool
    return module


def monitor_callbacks(config: PretrainConfig, data: PreparedData, module: PretrainModule, out: Path) -> list:
    """The NaN guard, the validation kNN monitor and the ``history.csv`` writer, in the order they must run."""
    every = monitor_every(config)
    knn = ValidationKNN(data.labels, data.split, config.knn_k, every, config.knn_bank_size, module.epochs)
    return [FiniteLoss(), knn, EpochHistory(out / HISTORY, module.recipe.batch_size, knn)]


def monitor_every(config: PretrainConfig) -> int:
    """``knn_every`` in epochs of the pool: under a step budget scaled up as the pool shrinks."""
    if config.steps is None:
        return config.knn_every
    return math.ceil(round(config.knn_every / config.pool_fraction, 9))


class _ShardBatches(pl.Callback):
    """With several processes, give each rank its share of every epoch's batches."""

    def on_fit_start(self, trainer: pl.Trainer, module: PretrainModule) -> None:
        module.batches.rank, module.batches.world = trainer.global_rank, trainer.world_size


def checkpoint_callbacks(directory: Path) -> list[ModelCheckpoint]:
    """``best.ckpt`` kept by the validation kNN monitor, and ``last.ckpt`` written at the end of every epoch.

    Two callbacks, not ``save_last=True``: Lightning refreshes that "last" copy only in steps where its top-k
    checkpoint is written, i.e. when the monitor improved, so a killed run would resume from the best epoch (or
    from nothing, with ``knn_every > 1``). The best callback comes first so that ``last.ckpt`` holds its
    updated state. ``best.ckpt`` holds the weights only (half the size: it is for picking weights, not
    resuming); ``last.ckpt`` also holds the optimiser, schedule and loop state an exact resume needs.
    """
    common = {"dirpath": directory, "enable_version_counter": False, "save_on_train_epoch_end": True}
    best = ModelCheckpoint(
        filename="best",
        monitor="val_knn_accuracy",
        mode="max",
        save_top_k=1,
        save_weights_only=True,
        **common,
    )
    last = ModelCheckpoint(filename=LAST.removesuffix(".ckpt"), monitor=None, save_top_k=1, **common)
    return [best, last]


def device_problem(
    config: PretrainConfig, names: tuple[str, str] = ("--accelerator ", "--devices ")
) -> str | None:
    """Why this machine cannot give ``config`` its accelerator or devices, or None. ``names`` are how the
    user sets them (``pretrain.accelerator=`` and ``pretrain.devices=`` in a study)."""
    accelerator, devices = names
    gpus = torch.cuda.device_count()
    if config.accelerator == "gpu" and gpus == 0:
        return f"{accelerator}gpu: no GPU is visible here; use {accelerator}cpu (or auto)"
    if config.devices > 1 and config.accelerator != "cpu" and 0 < gpus < config.devices:
        return f"{devices}{config.devices}: only {gpus} GPU(s) are visible; use {devices}{gpus}"
    return None


def check_devices(config: PretrainConfig) -> None:
    """Refuse, before anything is written, an accelerator or device count this machine does not have."""
    if problem := device_problem(config):
        raise ConfigError(problem)


def world_size(config: PretrainConfig) -> int:
    """DDP processes of a run: ``devices`` on each of ``num_nodes`` machines."""
    return config.devices * config.num_nodes


def _trainer(
    config: PretrainConfig, out: Path, callbacks: list[pl.Callback], steps_per_epoch: int, epochs: int
) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy="ddp" if world_size(config) > 1 else "auto",
        sync_batchnorm=world_size(config) > 1 and _on_gpu(config),
        precision=_precision(config),
        logger=[CSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="logs", version="")],
        callbacks=[*callbacks, _ShardBatches(), *checkpoint_callbacks(out / "checkpoints")],
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
        raise ConfigError(
            f"{out}: already holds a run; pass --resume to continue it, --restart to start over (the old run "
            "is kept beside it), or choose another --out"
        )
    return last if resume and last.exists() else None


def _recorded_settings(out: Path) -> dict | None:
    """The keyed settings of the run in ``out``: from ``encoder.json``, ``settings.json`` or, for a run
    written before settings were recorded, its ``config.yaml``."""
    recorded = recorded_settings(out)
    if recorded is not None:
        return recorded
    registry = read_registry(out)
    if registry:
        return list(registry.values())[-1]
    if (out / "config.yaml").is_file():
        try:
            loaded = yaml.safe_load((out / "config.yaml").read_text())
        except yaml.YAMLError:
            return None
        return pretrain_settings(loaded) if isinstance(loaded, dict) else None
    return None


def _check_resume(out: Path, settings: dict, fingerprint: str | None = None) -> None:
    """Refuse to resume (or reuse) the run in ``out`` when it was made with other settings or other data.

    Only keys both sides know are compared, so a run from an older medssl with fewer settings resumes.
    """
    recorded = _recorded_settings(out)
    if recorded is None:
        return
    fresh = {**settings, **({"data_fingerprint": fingerprint} if fingerprint else {})}
    changes = changed_common(recorded, fresh)
    if changes:
        raise refuse_changed(
            f"{out}: this run", changes, "Resume it with its own settings, pass --restart to start over"
        )


def _interrupted(trainer: pl.Trainer, out: Path) -> Interrupted:
    last = out / "checkpoints" / LAST
    if last.exists():
        saved = (
            f"the last completed epoch is saved in {last}; rerun the same command with --resume to continue"
        )
    else:
        saved = "no epoch had finished, so nothing was saved; rerun the same command without --resume"
    return Interrupted(f"interrupted in epoch {trainer.current_epoch}; {saved}")


def pretrain(
    config: PretrainConfig,
    out: str | Path,
    data: PreparedData | None = None,
    resume: bool = False,
    callbacks: list[pl.Callback] | None = None,
) -> Path:
    """Pre-train ``config.method`` and write ``out/encoder.pt`` + ``encoder.json``; returns ``out``.

    ``data`` (already prepared, e.g. shared by a study) is used as given; otherwise it is prepared from
    ``config.data`` and its split saved in ``out/split.csv``. ``resume`` continues from
    ``out/checkpoints/last.ckpt`` after checking, before anything is written, that the run was made with the
    same settings and data; ``callbacks`` are extra Lightning callbacks.
    """
    out = check_writable(check_out(out))
    check_apart(config.data.path, out)
    check_devices(config)
    ckpt = _check_out(out, resume)
    settings = pretrain_settings(config.model_dump(mode="json"))
    if resume:
        _check_resume(out, settings)
    if ckpt is None and (out / ENCODER_META).exists() and resume:
        return out
    size = data.image_size if data is not None else config.data.image_size
    problems = [  # before any image is decoded
        *backbone_problems(config.backbone, config.init, [size]),
        *method_problems(config.method, config.backbone),
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    try:
        data = data or prepare_data(config.data, run_dir=out)
    except DataChanged as error:
        raise error.advise(START_OVER) from None
    if resume:
        _check_resume(out, settings, data.fingerprint)
        remove_stale_temps(out / "checkpoints")
    settings["data_fingerprint"] = data.fingerprint
    write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    if ckpt is None:
        (out / SETTINGS).unlink(missing_ok=True)  # a fresh start records only its own settings
    record_settings(out, settings)
    module = build_module(config, data, world=world_size(config))
    steps_per_epoch = min(len(module.batches), config.max_steps_per_epoch or len(module.batches))
    watch = monitor_callbacks(config, data, module, out)
    with quiet_lightning_logs():  # Lightning's banners and tips ("GPU available", litlogger) are not medssl's
        trainer = _trainer(config, out, [*(callbacks or []), *watch], steps_per_epoch, module.epochs)
        try:
            trainer.fit(
                module, train_dataloaders=index_loader(module.batches), ckpt_path=ckpt, weights_only=True
            )
        except SystemExit:
            if trainer.state.status == TrainerStatus.INTERRUPTED:
                raise _interrupted(trainer, out) from None
            raise
    if trainer.global_rank == 0:
        _export(module, config, data, out, settings, _budget(module, trainer))
    return out


def _budget(module: PretrainModule, trainer: pl.Trainer) -> dict[str, int | float | bool | str]:
    """What the run learnt from and how much: the pool, and the optimiser steps, epochs and images it took."""
    pool: Pool = module.pool
    steps = int(trainer.global_step)
    return {
        "pool_fraction": pool.fraction,
        "pool_images": pool.n_images,
        "pool_groups": pool.n_groups,
        "pool_whole_groups": pool.whole_groups,
        "pool_note": pool.note,
        "steps": steps,
        "epochs": int(trainer.current_epoch),
        "images_seen": steps * module.recipe.batch_size * trainer.world_size,
    }


def _export(
    module: PretrainModule,
    config: PretrainConfig,
    data: PreparedData,
    out: Path,
    settings: dict,
    budget: dict,
) -> None:
    history = read_history(out / HISTORY)
    final = next((row for row in reversed(history) if row.get("knn_accuracy")), {})
    save_encoder(
        module.method.trained_encoder,
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
        precision=_precision(config),
        knn_accuracy=float(final["knn_accuracy"]) if final else None,
        settings=settings,
        settings_key=settings_key(settings),
        **budget,
    )
    write_text(out / "summary.json", json.dumps({"history_rows": len(history), **final}, indent=2))
