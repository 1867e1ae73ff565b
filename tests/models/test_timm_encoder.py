"""``timm:<name>`` and ``timm:<name>@<file>``: local weights only, loaded strictly, with timm's conventions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medssl.errors import ConfigError, WeightsUnavailableError
from medssl.models.backbones import backbone_spec, build_backbone
from medssl.models.encoder import encoder_from_spec, load_encoder, save_encoder
from medssl.models.timm_encoder import parse_timm, weights_kind

from .conftest import TIMM_NAME, TIMM_REPO, TimmFiles, put_in_hub_cache, tiny_timm


def features(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(x)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".bin"])
def test_a_weights_file_gives_the_model_it_came_from(timm_files: TimmFiles, suffix: str) -> None:
    encoder = encoder_from_spec(f"timm:{TIMM_NAME}@{timm_files.file(suffix)}")
    x = torch.rand(2, 3, 32, 32)
    expected = features(timm_files.model, (x - 0.5) / 0.5)  # timm's mean and std for this model: 0.5
    assert torch.equal(features(encoder, x), expected)
    assert encoder.feature_dim == 64 and not encoder.training
    meta = encoder.meta
    assert meta["method"] == meta["kind"] == "imagenet" and meta["init"] == "timm"
    assert meta["features"] == "cls token" and meta["patch"] == 16 and meta["trained_size"] == 160
    assert meta["encoder_id"] == "timm-test_vit.r160_in1k-weights"


def test_the_name_alone_reads_the_local_hugging_face_cache(timm_files: TimmFiles, offline_hub: Path) -> None:
    put_in_hub_cache(offline_hub, TIMM_REPO, {"model.safetensors": timm_files.file(".safetensors")})
    encoder = encoder_from_spec(f"timm:{TIMM_NAME}")
    x = torch.rand(3, 1, 48, 48)  # grayscale, at another multiple of the patch
    assert torch.equal(
        features(encoder, x), features(timm_files.model, (x.expand(-1, 3, -1, -1) - 0.5) / 0.5)
    )
    assert encoder.meta["weights"].startswith(str(offline_hub))
    assert encoder.meta["encoder_id"] == "timm-test_vit.r160_in1k"


def test_offline_without_weights_says_how_to_fetch_them(offline_hub: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as error:
        encoder_from_spec(f"timm:{TIMM_NAME}")
    message = str(error.value)
    assert "\n" not in message
    assert f"`hf download {TIMM_REPO} model.safetensors`" in message
    assert f"models--timm--test_vit.r160_in1k there into {offline_hub}" in message
    assert f"timm:{TIMM_NAME}@<file>" in message


def test_incomplete_weights_are_an_error_naming_the_key(timm_files: TimmFiles, tmp_path: Path) -> None:
    state = dict(timm_files.model.state_dict())
    del state["blocks.1.mlp.fc2.bias"]
    save_file(state, tmp_path / "cut.safetensors")
    with pytest.raises(ConfigError, match=r"missing key 'blocks.1.mlp.fc2.bias'"):
        encoder_from_spec(f"timm:{TIMM_NAME}@{tmp_path / 'cut.safetensors'}")


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    save_file(tiny_timm("test_vit2.r160_in1k").state_dict(), tmp_path / "vit2.safetensors")
    with pytest.raises(ConfigError, match=r"these weights do not fit timm:test_vit.r160_in1k \(missing key"):
        encoder_from_spec(f"timm:{TIMM_NAME}@{tmp_path / 'vit2.safetensors'}")


def test_an_unknown_name_lists_the_closest_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"no model 'vit_smal_patch14_dinov2'; closest names: vit_small_patch14"
    ):
        parse_timm("timm:vit_smal_patch14_dinov2")
    with pytest.raises(
        ConfigError, match=r"no weights 'lvd' for vit_small_patch14_dinov2; its tags: lvd142m"
    ):
        parse_timm("timm:vit_small_patch14_dinov2.lvd")


@pytest.mark.parametrize(
    ("tag", "kind"),
    [
        ("lvd142m", "foundation"),  # DINOv2: LVD-142M
        ("laion2b_ft_in12k_in1k", "foundation"),  # CLIP on LAION-2B, then ImageNet
        ("fb_swsl_ig1b_ft_in1k", "foundation"),  # Instagram-1B
        ("a1_in1k", "imagenet"),
        ("augreg_in21k_ft_in1k", "imagenet"),
        ("fb_in22k", "imagenet"),
        ("dino", "imagenet"),  # self-supervised on ImageNet-1k images
        ("", "foundation"),  # a file of unknown data
    ],
)
def test_the_kind_is_read_from_the_pretrained_tag(tag: str, kind: str) -> None:
    assert weights_kind(tag)[0] == kind


def test_readers_names_and_input_conventions_come_from_timm() -> None:
    assert parse_timm("timm:vit_small_patch14_dinov2.lvd142m").title == "DINOv2 ViT-S/14"
    assert parse_timm("timm:vit_base_patch14_reg4_dinov2").title == "DINOv2 ViT-B/14 reg4"
    assert parse_timm("timm:resnet50.a1_in1k").title == "resnet50 a1_in1k"  # resnet50 has several tags
    inputs = backbone_spec("timm:vit_small_patch14_dinov2.lvd142m").inputs
    assert (inputs.patch, inputs.trained_size, inputs.fixed_size) == (14, 518, None)
    assert inputs.size_problem(224) is None
    assert "set image_size 56 or 70 (its weights were trained at 518 px)" in str(inputs.size_problem(64))


def test_a_timm_backbone_starts_ssl_from_its_own_weights(
    timm_files: TimmFiles, offline_hub: Path, tmp_path: Path
) -> None:
    put_in_hub_cache(offline_hub, TIMM_REPO, {"model.safetensors": timm_files.file(".safetensors")})
    name = f"timm:{TIMM_NAME}"
    backbone = build_backbone(name, "pretrained")
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(features(backbone.eval(), x), features(timm_files.model, x))
    assert torch.equal(features(build_backbone(name, "imagenet").eval(), x), features(timm_files.model, x))
    random = build_backbone(name, "random").eval()
    assert not torch.equal(features(random, x), features(timm_files.model, x))
    with pytest.raises(ConfigError, match=r"init imagenet, but these are not ImageNet weights .*'lvd142m'"):
        build_backbone("timm:vit_small_patch14_dinov2.lvd142m", "imagenet")
    # An SSL run's encoder.pt/encoder.json pair with a timm backbone loads back the same.
    from medssl.models.encoder import Encoder

    encoder = Encoder(backbone, name, {"method": "simclr", "init": "pretrained"}).eval()
    save_encoder(encoder, tmp_path / "run")
    assert torch.equal(features(load_encoder(tmp_path / "run"), x), features(encoder, x))


def test_an_original_format_checkpoint_is_converted_but_never_resampled(
    timm_files: TimmFiles, tmp_path: Path
) -> None:
    import timm

    dinov2_layout = {
        **timm_files.model.state_dict(),
        "mask_token": torch.zeros(1, 64),
    }  # DINOv2's own release
    save_file(dinov2_layout, tmp_path / "original.safetensors")
    encoder = encoder_from_spec(f"timm:{TIMM_NAME}@{tmp_path / 'original.safetensors'}")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(features(encoder, x), features(timm_files.model, (x - 0.5) / 0.5))
    other_grid = timm.create_model("test_vit", img_size=192, num_classes=0).state_dict()  # 12 x 12 positions
    save_file({**other_grid, "mask_token": torch.zeros(1, 64)}, tmp_path / "grid.safetensors")
    with pytest.raises(
        ConfigError, match=r"key 'pos_embed' is \(1, 145, 64\) in the file but \(1, 101, 64\)"
    ):
        encoder_from_spec(f"timm:{TIMM_NAME}@{tmp_path / 'grid.safetensors'}")
