"""A study with ``timm:`` and ``hf:`` baselines and a ViT SSL backbone: the pre-flight check lists what is
missing before anything runs, and with local weights the study runs end to end and the report names the
foundation model as one."""

from __future__ import annotations

from pathlib import Path

import pytest

from medssl.study import run_study
from medssl.study.config import StudyConfig
from medssl.study.preflight import PreflightError, preflight

from .conftest import TIMM_NAME, TimmFiles


def study(cache: Path, size: int = 32, **changes) -> StudyConfig:
    data = {"path": "synthetic", "image_size": size, "cache_dir": str(cache), "synthetic": {"n_images": 160}}
    settings = {
        "datasets": {"tiny": data},
        "methods": ["simclr"],
        "backbones": ["vit_tiny_p4"],
        "pretrain": {
            "epochs": 1,
            "batch_size": 16,
            "knn_k": 10,
            "max_steps_per_epoch": 2,
            "accelerator": "cpu",
        },
        "evaluation": {"protocols": ["knn"], "k": 10, "n_bootstrap": 100},
        **changes,
    }
    return StudyConfig.model_validate(settings)


def test_the_preflight_lists_missing_weights_and_sizes_the_models_cannot_take(
    tmp_path: Path, pixel_cache: Path, offline_hub: Path, timm_files: TimmFiles
) -> None:
    baselines = [f"timm:{TIMM_NAME}", "hf:microsoft/rad-dino", f"timm:{TIMM_NAME}@{timm_files.file('.pth')}"]
    config = study(pixel_cache, size=34, baselines=baselines)
    with pytest.raises(PreflightError) as error:
        preflight(config, tmp_path / "run")
    message = str(error.value)
    assert (
        f"timm:{TIMM_NAME}: no local weights" in message and "hf download timm/test_vit.r160_in1k" in message
    )
    assert "hf:microsoft/rad-dino: no folder" in message and "hf download microsoft/rad-dino" in message
    assert f"timm:{TIMM_NAME} cannot take 34 px images: its patch is 16 px" in message
    assert "set image_size 32 or 48 (its weights were trained at 160 px)" in message
    assert "backbone vit_tiny_p4 cannot take 34 px images: its patch is 4 px" in message
    assert not (tmp_path / "run").exists()


def test_a_study_with_timm_and_hf_baselines_runs_and_reports_them(
    tmp_path: Path, pixel_cache: Path, timm_files: TimmFiles, hf_folders: dict[str, Path]
) -> None:
    baselines = [f"timm:{TIMM_NAME}@{timm_files.file('.safetensors')}", f"hf:{hf_folders['dinov2']}"]
    run = run_study(study(pixel_cache, baselines=baselines), tmp_path / "run", show_progress=False)
    report = (run / "report.md").read_text().replace("\\_", "_")  # Markdown escapes underscores
    assert "| Foundation model (dinov2, hf) `hf-dinov2` |" in report
    assert "| ImageNet (test_vit, timm) `timm-test_vit.r160_in1k-weights` |" in report
    assert "SimCLR (vit_tiny_p4)" in report
    assert (run / "tiny" / "eval" / "hf-dinov2" / "encoder.json").is_file()


def test_the_shipped_foundation_study_is_valid_and_its_models_are_classed() -> None:
    from medssl.models.timm_encoder import parse_timm
    from medssl.study import load_study
    from medssl.study.config import CONFIG_DIR

    config = load_study(CONFIG_DIR / "foundation" / "chest_xray_kather.yaml")
    kinds = {s: parse_timm(s).kind[0] for s in config.baselines if s.startswith("timm:")}
    assert kinds == {
        "timm:resnet50.a1_in1k": "imagenet",
        "timm:vit_small_patch14_dinov2.lvd142m": "foundation",
    }
    assert {s for s in config.baselines if s.startswith("hf:")} == {
        "hf:microsoft/rad-dino",
        "hf:owkin/phikon",
    }
    assert {d.image_size % 14 + d.image_size % 16 for d in config.datasets.values()} == {0}
