"""``hf:<folder>``: a transformers model folder, loaded offline and strictly; features are the class token."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from medssl.errors import ConfigError, WeightsUnavailableError
from medssl.models.encoder import encoder_from_spec

from .conftest import TINY_VIT, put_in_hub_cache


def reference(folder: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(folder, local_files_only=True).eval()


def test_a_dinov2_folder_gives_its_pooled_class_token(hf_folders: dict[str, Path]) -> None:
    encoder = encoder_from_spec(f"hf:{hf_folders['dinov2']}")
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        expected = reference(hf_folders["dinov2"])(pixel_values=(x - 0.5) / 0.25).pooler_output
        assert torch.equal(encoder(x), expected)
        assert encoder(torch.rand(1, 1, 48, 48)).shape == (1, 32)  # grayscale, another multiple of the patch
    meta = encoder.meta
    assert meta["method"] == meta["kind"] == "foundation" and meta["init"] == "hf"
    assert meta["title"] == "dinov2" and meta["encoder_id"] == "hf-dinov2"
    assert (
        meta["features"].startswith("cls token") and meta["normalisation_from"] == "preprocessor_config.json"
    )
    assert (meta["mean"], meta["std"], meta["patch"], meta["trained_size"]) == ([0.5] * 3, [0.25] * 3, 4, 32)


def test_a_vit_folder_without_pooler_or_processor_loads(hf_folders: dict[str, Path]) -> None:
    encoder = encoder_from_spec(f"hf:{hf_folders['vit']}")
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.inference_mode():
        pixels = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        expected = reference(hf_folders["vit"])(pixel_values=pixels).last_hidden_state[:, 0]
        assert torch.allclose(encoder(x), expected, atol=1e-6)
    assert encoder.meta["normalisation_from"].startswith("ImageNet's")
    assert "pooler" not in "".join(encoder.backbone.state_dict())


def test_a_repository_id_is_found_in_the_local_cache(hf_folders: dict[str, Path], offline_hub: Path) -> None:
    folder = hf_folders["dinov2"]
    put_in_hub_cache(offline_hub, "lab/tiny-dinov2", {p.name: p for p in folder.iterdir()})
    encoder = encoder_from_spec("hf:lab/tiny-dinov2")
    assert encoder.meta["title"] == "tiny-dinov2" and encoder.meta["encoder_id"] == "hf-tiny-dinov2"


def test_a_repository_that_is_not_here_says_how_to_fetch_it(offline_hub: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as error:
        encoder_from_spec("hf:microsoft/rad-dino")
    message = str(error.value)
    assert "`hf download microsoft/rad-dino`" in message and str(offline_hub) in message
    assert "--local-dir <folder>` and pass hf:<folder>" in message


def test_incomplete_weights_are_an_error_naming_the_key(hf_folders: dict[str, Path], tmp_path: Path) -> None:
    from transformers import Dinov2Config

    folder = tmp_path / "deeper"
    shutil.copytree(hf_folders["dinov2"], folder)
    Dinov2Config(**{**TINY_VIT, "num_hidden_layers": 3}, patch_size=4, image_size=32).save_pretrained(folder)
    with pytest.raises(
        ConfigError, match=r"do not fit the model its config.json describes \(missing key '.*2\."
    ):
        encoder_from_spec(f"hf:{folder}")


def test_pickled_weights_are_refused(hf_folders: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(hf_folders["vit"], folder)
    (folder / "model.safetensors").unlink()
    torch.save(
        {"embeddings.cls_token": torch.zeros(1, 1, 32), "trainer": Path("x")}, folder / "pytorch_model.bin"
    )
    with pytest.raises(ConfigError, match=r"refused: the weights in .* hold pickled Python objects"):
        encoder_from_spec(f"hf:{folder}")


def test_a_folder_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a Hugging Face model folder \(no config.json\)"):
        encoder_from_spec(f"hf:{tmp_path}")
