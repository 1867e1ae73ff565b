"""The contract of an SSL method: the views it trains on, its heads, and a loss over those views.

A method is a plain ``nn.Module`` that owns its heads (and momentum copies), not the training loop: the
Lightning module in ``medssl.train.module`` drives every method the same way. It asks the method for its
``view_plan`` (how many augmented crops of each image, at which size), draws those views on the device in one
batched pass per size, and passes them to ``training_loss``. Losses, heads and momentum updates come from lightly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from medssl.models.encoder import Encoder


@dataclass(frozen=True)
class ViewPlan:
    """The augmented views of every image a method trains on.

    ``global_crops`` views at the working size with the preset's crop scale (two for the contrastive and
    distillation methods, one for a masked autoencoder), and ``local_crops`` smaller views (multi-crop, Caron
    et al. 2020) of side ``local_size`` × the working size, cropped from ``local_scale`` of the image's area.
    ``local_scale=None`` takes (0.05, the preset's smallest global crop): the two ranges meet, as in SwAV's
    (0.14-1, 0.05-0.14) and DINO's (0.4-1, 0.05-0.4).
    """

    global_crops: int = 2
    local_crops: int = 0
    local_size: float = 0.5
    local_scale: tuple[float, float] | None = None

    def local_side(self, image_size: int) -> int:
        """Side in pixels of a local crop of an ``image_size`` image (at least 8)."""
        return max(8, round(self.local_size * image_size))


TWO_VIEWS = ViewPlan()
MULTI_CROP = ViewPlan(global_crops=2, local_crops=6)
"""SwAV's and DINO's multi-crop: 2 global crops and 6 local crops at half the side (lightly's Imagenette
benchmark: 2 × 128 px and 6 × 64 px)."""


class Views(NamedTuple):
    """One batch of views, each (B, C, H, W) float in [0, 1]: ``global_crops`` at the working size, then the
    smaller ``local_crops`` (empty unless the plan asks for them)."""

    global_crops: tuple[torch.Tensor, ...]
    local_crops: tuple[torch.Tensor, ...] = ()


def freeze_gradients(module: nn.Module) -> None:
    """Zero the gradients of ``module`` for this step (a part kept frozen early on).

    Zeroed rather than dropped: fused SGD needs every parameter to take part from its first step on. The weight
    decay left only rescales the weights, which SwAV's prototype normalisation and DINO's weight-normalised
    last layer undo.
    """
    for parameter in module.parameters():
        if parameter.grad is not None:
            parameter.grad.zero_()


class SSLMethod(nn.Module):
    """Base class: ``encoder`` plus whatever heads the method needs."""

    title: ClassVar[str] = ""
    """The method's name in reports, e.g. ``MoCo v2``."""
    default_lr: ClassVar[float] = 0.06
    """SGD learning rate at batch size 128 (scaled linearly with the batch), as in lightly's benchmarks."""
    view_plan: ViewPlan = TWO_VIEWS
    """The views ``training_loss`` takes (a class attribute, so that a preview can show them without building
    the method; an instance may set its own from its options)."""

    def __init__(self, encoder: Encoder, gather_distributed: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.gather_distributed = gather_distributed

    @classmethod
    def backbone_problem(cls, backbone: str) -> str | None:
        """Why this method cannot train backbone ``backbone`` (a ``PretrainConfig.backbone``), checked before any
        image is decoded; None when it can (every backbone, unless a method needs a kind: MAE a ViT)."""
        return None

    @property
    def trained_encoder(self) -> Encoder:
        """The encoder a run monitors and exports: ``encoder``, unless the method's paper evaluates another."""
        return self.encoder

    def embed_pair(self, view0: torch.Tensor, view1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features of both views in one forward pass."""
        features = self.encoder(torch.cat([view0, view1]))
        return features.chunk(2)

    def training_loss(self, views: Views) -> torch.Tensor:
        """The loss of one batch of views drawn by ``view_plan``: by default ``loss`` of the global crops
        (``loss(view0, view1)`` for two-view methods, ``loss(view)`` for one view)."""
        return self.loss(*views.global_crops)

    def loss(self, *views: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def for_training_set(
        cls, encoder: Encoder, n_train: int, batch_size: int, gather_distributed: bool = False
    ) -> SSLMethod:
        """The method sized for a training set of ``n_train`` images in batches of ``batch_size``.

        Most methods need no size; a method that does (MoCo's queue) overrides this.
        """
        return cls(encoder, gather_distributed=gather_distributed)

    def before_optimizer_step(self, epoch: int) -> None:
        """Called after the backward pass, before each optimiser step, in ``epoch`` (from 0): a method that
        keeps a part frozen early on (SwAV's prototypes, DINO's last layer) zeroes its gradients here
        (:func:`freeze_gradients`)."""

    def on_step_end(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1] (momentum updates)."""
