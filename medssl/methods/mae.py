"""MAE (He et al. 2022): a ViT encodes a random quarter of an image's patches; a light decoder predicts the pixels
of the others.

lightly's blocks (``MaskedVisionTransformerTIMM``, ``MaskedVisionTransformerDecoderTIMM``, ``random_token_mask``,
``patchify``, ``get_at_index``, ``set_at_index``, ``normalize_mean_var``), as lightly's MAE example builds them on a
timm ViT:

* one view (no second view to compare), drawn by the same augmentation preset as every method;
* 75 % of the patch tokens masked at random, a fresh mask per image and step; the class token is always kept;
* the target of a masked patch is its pixels (of the encoder's normalised input), normalised by the patch's own
  mean and variance (the paper's ``norm_pix_loss``); the loss is the mean squared error over masked patches;
* a decoder sized for the small ViTs: 256-d, 2 blocks, 8 heads (the paper's is 512-d, 8 blocks for ViT-L; its
  ablation finds a narrower decoder costs little, a deeper one helps linear probing), so that it costs about as
  much as ViT-Tiny's encoder on the kept quarter of the tokens; fixed sine-cosine position embeddings, resampled
  to the image's patch grid as timm resamples the encoder's;
* a ViT from random weights gets MAE's initialisation and fixed sine-cosine position embeddings; one with
  pretrained weights (a ``timm:`` backbone) keeps them.

The masked encoder wraps the encoder's own ViT, so the trained and exported encoder is that ViT, whose features
are its usual ones (the class token after the final norm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lightly.models import utils
from lightly.models.modules import MaskedVisionTransformerTIMM
from lightly.models.modules.masked_vision_transformer_decoder_timm import MaskedVisionTransformerDecoderTIMM
from timm.layers import resample_abs_pos_embed
from torch import nn

from medssl.errors import ConfigError
from medssl.methods.base import SSLMethod, ViewPlan
from medssl.models.backbones import backbone_is_vit
from medssl.models.encoder import Encoder
from medssl.models.vit import is_timm_vit

MASK_RATIO = 0.75
VIT_BACKBONES = (
    "vit_tiny or vit_small (64 px images), vit_tiny_p4 or vit_small_p4 (32 px), or a timm:vit_* model"
)


def needs_vit(backbone: str) -> str:
    return f"method mae masks image patches and needs a ViT backbone, not {backbone}; set backbone to {VIT_BACKBONES}"


class GridDecoder(MaskedVisionTransformerDecoderTIMM):
    """lightly's MAE decoder, its fixed position embedding resampled to the image's patch grid."""

    def add_pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        side = math.isqrt(x.shape[1] - self.num_prefix_tokens)
        return x + resample_abs_pos_embed(
            self.pos_embed, (side, side), num_prefix_tokens=self.num_prefix_tokens
        )


class MAE(SSLMethod):
    title = "MAE"
    view_plan = ViewPlan(global_crops=1)

    def __init__(
        self,
        encoder: Encoder,
        gather_distributed: bool = False,
        mask_ratio: float = MASK_RATIO,
        decoder_dim: int = 256,
        decoder_depth: int = 2,
        decoder_heads: int = 8,
    ) -> None:
        super().__init__(encoder, gather_distributed)
        vit = encoder.backbone
        if not is_timm_vit(vit):
            raise ConfigError(needs_vit(encoder.name))
        fresh = encoder.meta.get("init", "random") == "random"
        self.masked = MaskedVisionTransformerTIMM(
            vit,
            weight_initialization="" if fresh else "skip",
            pos_embed_initialization="sincos" if fresh else "skip",
        )
        # The encoder is given only the kept tokens, never a mask token.
        self.masked.mask_token.requires_grad_(False)
        self.mask_ratio = mask_ratio
        self.patch = int(vit.patch_embed.patch_size[0])
        channels = vit.patch_embed.proj.in_channels
        self.decoder_embed = nn.Linear(vit.embed_dim, decoder_dim)
        self.decoder = GridDecoder(
            vit.patch_embed.num_patches, decoder_dim, decoder_depth, decoder_heads, vit.num_prefix_tokens
        )
        self.predict = nn.Linear(decoder_dim, self.patch**2 * channels)

    @classmethod
    def backbone_problem(cls, backbone: str) -> str | None:
        return None if backbone_is_vit(backbone) else needs_vit(backbone)

    def masks(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the kept tokens (the class token first) and of the masked ones, per image."""
        tokens = (images.shape[-1] // self.patch) ** 2 + self.masked.vit.num_prefix_tokens
        return utils.random_token_mask(
            (images.shape[0], tokens), mask_ratio=self.mask_ratio, device=images.device
        )

    def reconstruct(self, images: torch.Tensor, keep: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Predicted pixels of the ``masked`` tokens of normalised ``images`` from the ``keep`` tokens."""
        encoded = self.decoder_embed(self.masked.encode(images, idx_keep=keep))
        sequence = (images.shape[0], keep.shape[1] + masked.shape[1])
        tokens = utils.repeat_token(self.decoder.mask_token, sequence)
        decoded = self.decoder(utils.set_at_index(tokens, keep, encoded.type_as(tokens)))
        return self.predict(utils.get_at_index(decoded, masked))

    def targets(self, images: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Pixels of the masked patches, each normalised by its own mean and variance."""
        prefix = self.masked.vit.num_prefix_tokens
        patches = utils.get_at_index(utils.patchify(images, self.patch), masked - prefix)
        return utils.normalize_mean_var(patches.float())

    def loss(self, view: torch.Tensor) -> torch.Tensor:
        images = self.encoder.normalise(view)
        keep, masked = self.masks(images)
        prediction = self.reconstruct(images, keep, masked)
        return F.mse_loss(prediction.float(), self.targets(images, masked))
