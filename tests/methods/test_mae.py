"""MAE: the encoder sees a random quarter of the patches, the decoder learns to predict the others' pixels, and
a backbone that is no ViT is refused in one line naming the setting and the fix."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from medssl.errors import ConfigError
from medssl.methods import build_method, method_problems
from medssl.methods.base import ViewPlan, Views
from medssl.methods.mae import MAE
from medssl.models import build_encoder
from medssl.models.encoder import Encoder

SIZE, PATCH = 32, 4
PATCHES = (SIZE // PATCH) ** 2


def small_mae(**options) -> MAE:
    """MAE on a 2-block ViT with 4 px patches (vit_tiny_p4's input conventions), a small decoder: seconds."""
    vit = VisionTransformer(
        img_size=SIZE,
        patch_size=PATCH,
        embed_dim=64,
        depth=2,
        num_heads=2,
        num_classes=0,
        dynamic_img_size=True,
    )
    encoder = Encoder(vit, "vit_tiny_p4", {"init": "random"}, feature_dim=64)
    return build_method("mae", encoder, decoder_dim=64, decoder_heads=2, **options)  # type: ignore[return-value]


def test_the_encoder_sees_a_random_quarter_of_the_patches_and_the_class_token() -> None:
    torch.manual_seed(0)
    method = small_mae()
    seen: list[int] = []
    method.encoder.backbone.blocks.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
    images = torch.rand(4, 3, SIZE, SIZE)
    method.loss(images)
    assert seen == [1 + PATCHES // 4]  # the class token and 16 of 64 patches
    keep, masked = method.masks(images)
    assert masked.shape == (4, PATCHES * 3 // 4) and (keep[:, 0] == 0).all() and (masked > 0).all()
    assert torch.equal(torch.cat([keep, masked], 1).sort(1).values, torch.arange(PATCHES + 1).expand(4, -1))
    assert len({tuple(row.sort().values.tolist()) for row in masked}) == 4  # each image its own mask
    assert MAE.view_plan == ViewPlan(global_crops=1)  # one view: nothing to compare it with


def test_reconstructions_of_masked_patches_improve_and_beat_each_patchs_mean(tiny_data) -> None:
    """Targets are pixel-normalised per patch: predicting each patch's mean scores 1. After training, the
    decoder predicts held-out masks (a fixed seed) far better, from the visible patches alone."""
    torch.manual_seed(0)
    method = small_mae()
    images = torch.from_numpy(tiny_data.images[:16].copy()).permute(0, 3, 1, 2).float() / 255

    def held_out_loss() -> float:
        with torch.no_grad():
            torch.manual_seed(123)
            return method.loss(images).item()

    before = held_out_loss()
    parameters = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=method.default_lr, momentum=0.9)
    weights = method.encoder.backbone.blocks[0].attn.qkv.weight.detach().clone()
    for _ in range(10):
        optimizer.zero_grad()
        method.training_loss(Views((images,))).backward()
        optimizer.step()
    after = held_out_loss()
    assert after < 0.8 * before and after < 0.9, (before, after)
    # The exported encoder is the ViT that learnt.
    assert not torch.equal(weights, method.encoder.backbone.blocks[0].attn.qkv.weight)


def test_a_backbone_that_is_no_vit_is_refused_naming_the_setting_and_the_fix() -> None:
    for backbone in ("resnet18", "efficientnet_lite0", "timm:resnet18"):
        (problem,) = method_problems("mae", backbone)
        assert f"method mae masks image patches and needs a ViT backbone, not {backbone}" in problem
        assert "set backbone to vit_tiny" in problem and "vit_tiny_p4" in problem
    for backbone in ("vit_tiny", "vit_small_p4", "timm:vit_tiny_patch16_224"):
        assert method_problems("mae", backbone) == []
    assert method_problems("simclr", "resnet18") == []
    with pytest.raises(ConfigError, match="needs a ViT backbone, not resnet18"):
        build_method("mae", build_encoder("resnet18"))
