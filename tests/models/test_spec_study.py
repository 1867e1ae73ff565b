"""A study with ``timm:`` and ``hf:`` baselines and a ViT SSL backbone: the pre-flight check lists what is
missing before anything runs, and with local weights the study runs end to end and the report names the
foundation model as one."""

from __future__ import annotations

import re
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


def test_the_preflight_refuses_mae_on_a_cnn_in_the_grid_and_takes_it_on_a_vit(
    tmp_path: Path, pixel_cache: Path
):
    """A grid that pairs MAE with ResNet-18 is refused before anything runs; MAE on the ViT in ``ssl_encoders``
    beside a ResNet grid passes the check."""
    mixed = study(pixel_cache, methods=["simclr", "mae"], backbones=["resnet18"])
    with pytest.raises(
        PreflightError, match="method mae masks image patches and needs a ViT backbone, not resnet18"
    ):
        preflight(mixed, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    extra = [{"method": "mae", "backbone": "vit_tiny_p4", "init": "random"}]
    preflight(study(pixel_cache, backbones=["resnet18"], ssl_encoders=extra), tmp_path / "run")


PAIR_LINE = re.compile(
    r"^(No significant difference between (?P<tie_a>.+?) and (?P<tie_b>.+?): [+−]\d+\.\d points of accuracy, "
    r"p[=<][\d.]+\.|(?P<winner>.+?) is better than (?P<loser>.+?) by \+?\d+\.\d points of accuracy, p[=<][\d.]+\."
    r"|(?P<kind_a>.+?) vs (?P<kind_b>.+?): no verdict: .+\.)$"
)
NAMES = {  # how the verdict names the best encoder of each kind, or (no verdict) the kind
    "ssl": ("in-domain SSL (SimCLR, vit_tiny_p4, random init)", "in-domain SSL"),
    "imagenet": ("ImageNet frozen (test_vit)", "ImageNet transfer"),
    "foundation": ("frozen foundation model (dinov2, hf)", "foundation model"),
}


def _pair(line: str) -> set[str]:
    """The kinds a paired-test line of the three-way verdict compares."""
    found = PAIR_LINE.match(line)
    assert found, line
    named = {name.lower() for name in found.groupdict().values() if name}
    return {kind for kind, spellings in NAMES.items() if named & {s.lower() for s in spellings}}


def test_a_study_with_timm_and_hf_baselines_runs_and_reports_the_three_way_verdict(
    tmp_path: Path, pixel_cache: Path, timm_files: TimmFiles, hf_folders: dict[str, Path]
) -> None:
    baselines = [f"timm:{TIMM_NAME}@{timm_files.file('.safetensors')}", f"hf:{hf_folders['dinov2']}"]
    evaluation = {"protocols": ["knn"], "k": 10, "n_bootstrap": 100, "label_fractions": [0.5, 1.0]}
    config = study(pixel_cache, baselines=baselines, evaluation=evaluation)
    run = run_study(config, tmp_path / "run", show_progress=False)
    report = (run / "report.md").read_text().replace("\\_", "_")  # Markdown escapes underscores
    assert "| Foundation model (dinov2, hf) `hf-dinov2` |" in report
    assert "| ImageNet (test_vit, timm) `timm-test_vit.r160_in1k-weights` |" in report
    assert "SimCLR (vit_tiny_p4)" in report
    assert (run / "tiny" / "eval" / "hf-dinov2" / "encoder.json").is_file()
    verdict = report.split("### Verdict: in-domain SSL vs ImageNet transfer vs foundation model\n", 1)[1]
    lines = [line for line in verdict.split("\n### ", 1)[0].splitlines() if line]
    assert lines[0].startswith("> The answer ")  # where the answer changes with the number of labels
    for fraction in ("50 %", "100 %"):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"> At {fraction} labels ("))
        assert re.match(
            r"> At .+?: (.+ is best|.+ scores highest|no significant difference|no verdict)", lines[at]
        )
        pairs = [_pair(line) for line in lines[at + 1 : at + 4]]
        assert pairs == [{"ssl", "imagenet"}, {"ssl", "foundation"}, {"imagenet", "foundation"}]
    assert "label-efficiency-kinds.png" in report  # the best of each kind against the label fraction


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
