"""Weights files are read without running pickled code, strictly, and a model's memory is estimated first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medssl.errors import ConfigError
from medssl.models import weights
from medssl.models.weights import load_strict, memory_problem, misfit, read_weights

from .conftest import TimmFiles, tiny_timm


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".bin"])
def test_every_format_reads_back_the_same_tensors(timm_files: TimmFiles, suffix: str) -> None:
    state = read_weights(timm_files.file(suffix))
    expected = timm_files.model.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_a_pickle_is_refused_before_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"weight": torch.zeros(2), "optimizer": Path("x")}, path)  # a pickled object beside a tensor
    with pytest.raises(ConfigError, match=r"model.pth: refused: it holds pickled Python objects"):
        read_weights(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".bin"])
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"notes{suffix}"
    path.write_text("these are my notes, not weights")
    with pytest.raises(ConfigError, match=rf"notes\{suffix}: not a (safetensors )?checkpoint"):
        read_weights(path)


def test_strict_loading_names_the_missing_unexpected_and_misshaped_keys() -> None:
    model = tiny_timm()
    state = dict(model.state_dict())
    del state["blocks.0.attn.qkv.weight"]
    state["extra.weight"] = torch.zeros(1)
    state["cls_token"] = torch.zeros(1, 1, 3)
    problem = misfit({k: v.shape for k, v in model.state_dict().items()}, state)
    assert problem == (
        "missing key 'blocks.0.attn.qkv.weight'; unexpected key 'extra.weight'; "
        "key 'cls_token' is (1, 1, 3) in the file but (1, 1, 64) in the model"
    )
    before = model.state_dict()["norm.weight"].clone()
    with pytest.raises(ConfigError, match="these weights do not fit test_vit"):
        load_strict(model, state, "w.pth", "test_vit")
    assert torch.equal(model.state_dict()["norm.weight"], before)  # nothing half-loaded


def test_too_large_a_model_gets_an_estimate_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights.available_memory() > 0
    monkeypatch.setattr(weights, "available_memory", lambda: 2 * 2**30)
    assert memory_problem(100_000_000, "small") is None  # 0.75 GiB
    problem = memory_problem(1_136_000_000, "timm:vit_giant_patch14_dinov2.lvd142m")
    assert problem is not None
    assert "1,136 M parameters" in problem and "8.5 GiB" in problem and "2.0 GiB are available" in problem
