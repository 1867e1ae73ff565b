"""A study checks every prerequisite before its first cell and stops with one message listing them all."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medssl.study import run_study
from medssl.study.config import StudyConfig
from medssl.study.preflight import PreflightError, estimated_checkpoint_bytes, preflight


def study_with(cache: Path, **changes):
    """A tiny study that would train (one SSL method) unless a prerequisite is missing."""
    data = {"path": "synthetic", "image_size": 32, "cache_dir": str(cache), "synthetic": {"n_images": 80}}
    settings = {
        "datasets": {"tiny": data},
        "methods": ["simclr"],
        "pretrain": {"epochs": 1, "batch_size": 16, "knn_k": 5, "max_steps_per_epoch": 1},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn"], "k": 5, "n_bootstrap": 100},
        **changes,
    }
    return StudyConfig.model_validate(settings)


@pytest.fixture
def no_torchvision_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty torch hub cache; downloads fail at once as on an offline machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)


def test_missing_imagenet_weights_stop_the_study_before_any_training(
    tmp_path: Path, pixel_cache: Path, no_torchvision_weights
) -> None:
    study = study_with(pixel_cache, baselines=["random:resnet18", "imagenet:resnet18"])
    out = tmp_path / "run"
    with pytest.raises(PreflightError, match=r"imagenet:resnet18: ImageNet weights for resnet18") as error:
        run_study(study, out, show_progress=False)
    assert "checkpoints/resnet18-" in str(error.value)  # says where to put the file
    assert not out.exists()  # nothing trained, nothing written


def test_every_problem_is_listed_in_one_message(
    tmp_path: Path, pixel_cache: Path, no_torchvision_weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    study = study_with(pixel_cache, inits=["imagenet"], backbones=["resnet50"])
    study.datasets["missing"] = study.datasets["tiny"].model_copy(update={"path": str(tmp_path / "nowhere")})
    study.pretrain.accelerator = "gpu"
    with pytest.raises(PreflightError) as error:
        preflight(study, a_file)
    message = str(error.value)
    assert f"dataset 'missing': {tmp_path / 'nowhere'}: no such file or folder" in message
    assert "imagenet:resnet50" in message
    assert "no GPU is visible" in message
    assert f"--out {a_file} is a file" in message
    assert message.count("\n  - ") == 4


def test_a_study_whose_checkpoints_do_not_fit_on_disk_is_refused(
    tmp_path: Path, pixel_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    study = study_with(pixel_cache)
    need = estimated_checkpoint_bytes(study)
    # ResNet-18's 44 MB of weights: last.ckpt (with momentum), best.ckpt and encoder.pt
    assert need >= 4 * 44_000_000
    free = shutil.disk_usage(tmp_path)._replace(free=need // 2)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    with pytest.raises(PreflightError, match="checkpoints are needed but"):
        preflight(study, tmp_path / "run")


def test_a_study_with_all_prerequisites_passes(tmp_path: Path, pixel_cache: Path) -> None:
    preflight(study_with(pixel_cache, baselines=["imagenet:efficientnet_lite0"]), tmp_path / "run")


def test_a_slurm_study_asks_for_no_gpu_on_the_host_that_submits_it(
    tmp_path: Path, pixel_cache: Path, monkeypatch: pytest.MonkeyPatch, slurm_login_node
) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # a login node
    study = study_with(pixel_cache, launcher="slurm")
    study.pretrain.accelerator = "gpu"
    preflight(study, tmp_path / "run")  # the cells get their GPUs from SLURM
    study.launcher = "local"
    with pytest.raises(PreflightError, match="no GPU is visible"):
        preflight(study, tmp_path / "run")
