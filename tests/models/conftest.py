"""Local weights that the encoder-spec tests load: tiny random-weight timm and transformers models written to
files, a fake Hugging Face cache, and an offline machine. Nothing is downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from ..reliability.conftest import tissue  # noqa: F401 (fixture of the command-line tests)

TIMM_NAME = "test_vit.r160_in1k"
"""timm's own tiny test ViT (0.3 M parameters, 16 px patches), trained on ImageNet-1k at 160 px."""
TIMM_REPO = "timm/test_vit.r160_in1k"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class TimmFiles:
    model: nn.Module
    folder: Path

    def file(self, suffix: str) -> Path:
        return self.folder / f"weights{suffix}"


def tiny_timm(name: str = TIMM_NAME, seed: int = 0) -> nn.Module:
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, num_classes=0).eval()


@pytest.fixture(scope="session")
def timm_files(tmp_path_factory: pytest.TempPathFactory) -> TimmFiles:
    """The tiny ViT's random weights as .safetensors, .pth (plain state dict) and .bin (training checkpoint)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("timm-weights")
    model = tiny_timm()
    state = model.state_dict()
    save_file(state, folder / "weights.safetensors")
    torch.save(state, folder / "weights.pth")
    torch.save({"state_dict": state, "epoch": 3}, folder / "weights.bin")
    return TimmFiles(model, folder)


def put_in_hub_cache(cache: Path, repo: str, files: dict[str, Path]) -> Path:
    """Lay ``files`` out as the Hugging Face cache does (``models--org--name/snapshots/<commit>/``)."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(SNAPSHOT)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())
    return snapshot


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache and torch hub, with downloads off (``HF_HUB_OFFLINE=1``)."""
    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return cache


TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="session")
def hf_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny transformers models saved with ``save_pretrained``: a DINOv2 with its image processor (mean 0.5,
    std 0.25, 32 px crop) and a ViT without pooler or processor."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model, ViTConfig, ViTModel

    root = tmp_path_factory.mktemp("hf-models")
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(**TINY_VIT, patch_size=4, image_size=32)).save_pretrained(root / "dinov2")
    processor = BitImageProcessor(
        image_mean=[0.5] * 3,
        image_std=[0.25] * 3,
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
    )
    processor.save_pretrained(root / "dinov2")
    ViTModel(ViTConfig(**TINY_VIT, patch_size=4, image_size=32), add_pooling_layer=False).save_pretrained(
        root / "vit"
    )
    return {"dinov2": root / "dinov2", "vit": root / "vit"}
