"""Small Vision Transformers (timm) for self-supervised pre-training on 32-64 px images.

ImageNet ViTs cut 224 px images into 16 px patches; at 64 px that leaves 16 tokens. These keep ViT-Tiny's and
ViT-Small's widths and depths with 8 px patches (64 tokens at 64 px) or 4 px patches (64 tokens at 32 px).
Their position embeddings are interpolated to the image size (timm's ``dynamic_img_size``), so any side that is
a multiple of the patch works. Features are the class token after the final norm.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from medssl.errors import ConfigError

VIT_WIDTHS = {"tiny": (192, 3), "small": (384, 6)}
"""Embedding width and attention heads of each size (12 blocks each, as in DeiT)."""
DEPTH = 12
DEFAULT_SIZE = 64
"""The side the position embeddings are created for; other multiples of the patch are interpolated."""


def vit(size: str, patch: int) -> Callable[[bool], nn.Module]:
    """A builder of a timm ``VisionTransformer`` of ``size`` with ``patch`` px patches and no classifier."""

    def build(imagenet: bool) -> nn.Module:
        if imagenet:
            raise ConfigError(
                f"vit_{size} with {patch} px patches has no ImageNet weights; use init random, or a timm backbone "
                f"with weights such as timm:vit_{size}_patch16_224.augreg_in21k_ft_in1k at 224 px"
            )
        from timm.models.vision_transformer import VisionTransformer

        width, heads = VIT_WIDTHS[size]
        return VisionTransformer(
            img_size=DEFAULT_SIZE,
            patch_size=patch,
            embed_dim=width,
            depth=DEPTH,
            num_heads=heads,
            num_classes=0,
            global_pool="token",
            dynamic_img_size=True,
        )

    return build


def is_timm_vit(module: nn.Module) -> bool:
    """Whether ``module`` is a timm ``VisionTransformer`` (what lightly's masked-image blocks take)."""
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(module, VisionTransformer)
