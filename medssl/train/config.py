"""Pre-training configuration and the two optimisation recipes (the study's and medssl's default)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from medssl.config import StrictModel
from medssl.data.dataset import DataConfig


class PretrainConfig(StrictModel):
    """Everything ``medssl pretrain`` needs; every field is settable in YAML or on the command line."""

    method: str = "simclr"
    backbone: str = Field(
        "resnet18",
        description="resnet18, resnet50, efficientnet_lite0, vit_tiny, vit_small (8 px patches; _p4: 4 px), or "
        "timm:<model name>",
    )
    init: Literal["random", "imagenet", "pretrained"] = Field(
        "random",
        description="Starting weights: random, imagenet, or pretrained (the weights a timm:<name> backbone names)",
    )
    recipe: Literal["default", "paper"] = "default"
    epochs: int = Field(20, ge=1, description="Passes over the pool; with steps set, derived from steps")
    steps: int | None = Field(
        None,
        ge=1,
        description="Total optimiser steps (constant compute): a smaller pool gets more epochs; None: epochs",
    )
    pool_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of the training images pre-training learns from (nested, stratified, whole groups, "
        "drawn by seed); probes, kNN and the test set always use the whole split",
    )
    batch_size: int | None = Field(None, ge=2, description="None: the recipe's (paper 64, default 128)")
    lr: float | None = Field(None, gt=0, description="None: the recipe's")
    weight_decay: float | None = Field(None, ge=0)
    warmup_epochs: int | None = Field(None, ge=0)
    augment: Literal["auto", "xray", "histology", "generic"] = "auto"
    augment_backend: Literal["fused", "kornia"] = Field(
        "fused", description="fused: drawn on the device, one sequence (default); kornia: kornia's modules"
    )
    seed: int = 0
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(
        1, ge=1, description="Machines of one DDP run, each with `devices` (SLURM: a job of num_nodes nodes)"
    )
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    compile: bool = Field(
        False,
        description="Compile the training step (augmentation, forward, loss, backward; CUDA graphs on a GPU). "
        "Off by default: no steady gain measured on 2 CPU cores (BENCHMARKS.md); not yet measured on a GPU",
    )
    knn_k: int = Field(200, ge=1)
    knn_every: int = Field(
        1,
        ge=1,
        description="Validation kNN monitor every N epochs (and the last); with steps set, N epochs of the whole "
        "training set (N / pool_fraction epochs of the pool), so every pool is monitored about as often",
    )
    knn_bank_size: int = Field(5000, ge=10, description="Training images in the monitor's kNN bank")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="Cap steps per epoch (quick runs, tests)")
    progress_bar: bool = True
    data: DataConfig = DataConfig()

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        return known_method(value)


def known_method(name: str) -> str:
    """``name`` if ``medssl.methods.METHODS`` has it, else a ValueError listing the methods (for validators)."""
    from medssl.methods import METHODS  # the registry; it imports torch and lightly, as training does

    if name not in METHODS:
        raise ValueError(f"method '{name}' is unknown; choose one of: {', '.join(METHODS)}")
    return name


def plan_epochs(config: PretrainConfig, batches_per_epoch: int) -> int:
    """Epochs to train: ``config.epochs``, or with a step budget as many as ``steps`` needs (the last partial)."""
    if config.steps is None:
        return config.epochs
    per_epoch = min(batches_per_epoch, config.max_steps_per_epoch or batches_per_epoch)
    return max(1, math.ceil(config.steps / max(1, per_epoch)))


@dataclass(frozen=True)
class Recipe:
    """Resolved optimisation settings."""

    name: str
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    warmup_epochs: int
    cosine: bool


def resolve_recipe(config: PretrainConfig, method_lr: float) -> Recipe:
    """The study's recipe (plain SGD, lr 0.01, batch 64, no schedule) or medssl's default
    (SGD momentum 0.9, lr scaled with the batch, weight decay 5e-4, warm-up then cosine decay).

    With ``steps`` set, ``config.epochs`` must be the epochs the step budget gives (``plan_epochs``)."""
    if config.recipe == "paper":
        batch = config.batch_size or 64
        defaults = Recipe("paper", batch, 0.01, 0.0, 0.0, 0, cosine=False)
    else:
        batch = config.batch_size or 128
        # With a step budget, about 10% of the steps (in whole epochs of the pool), whatever the pool size.
        warmup = min(10, config.epochs // 10) if config.steps is None else round(config.epochs / 10)
        defaults = Recipe("default", batch, method_lr * batch / 128, 0.9, 5e-4, warmup, cosine=True)
    return Recipe(
        defaults.name,
        batch,
        config.lr if config.lr is not None else defaults.lr,
        defaults.momentum,
        config.weight_decay if config.weight_decay is not None else defaults.weight_decay,
        config.warmup_epochs if config.warmup_epochs is not None else defaults.warmup_epochs,
        defaults.cosine,
    )
