"""``medssl evaluate --encoder timm:…/hf:…``: results rows and encoder.json, and every bad input as one line,
exit 2, before any image is decoded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medssl.models import weights
from medssl.rundir.results import read_results

from ..reliability.cli import assert_one_error_line, evaluate, run_main, tiny_pretrain
from .conftest import TIMM_NAME, TimmFiles, tiny_timm


def evaluate_spec(tissue: Path, spec: str, *extra: str) -> list[str]:
    args = evaluate(tissue.parent / "out", tissue, *extra)
    args[args.index("random:resnet18")] = spec
    return args


def test_timm_and_hf_encoders_are_evaluated_under_their_kind(
    tissue: Path, timm_files: TimmFiles, hf_folders: dict[str, Path], capsys, monkeypatch
) -> None:
    timm_spec = f"timm:{TIMM_NAME}@{timm_files.file('.safetensors')}"
    for spec in (timm_spec, f"hf:{hf_folders['dinov2']}"):
        code, err = run_main(capsys, monkeypatch, *evaluate_spec(tissue, spec))
        assert code == 0, err
    out = tissue.parent / "out"
    rows = {r.encoder: r for r in read_results(out / "results.csv")}
    timm_row, hf_row = rows["timm-test_vit.r160_in1k-weights"], rows["hf-dinov2"]
    assert (timm_row.method, timm_row.backbone, timm_row.init) == ("imagenet", "test_vit", "timm")
    assert (hf_row.method, hf_row.backbone, hf_row.init) == ("foundation", "dinov2", "hf")
    assert 0 <= hf_row.metric("accuracy") <= 1
    meta = json.loads((out / "tissue" / "eval" / "hf-dinov2" / "encoder.json").read_text())
    assert meta["kind"] == "foundation" and meta["features"].startswith("cls token")
    assert meta["source"] == f"hf:{hf_folders['dinov2']}"


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image is decoded: every error below must come first."""

    def decoded(*args, **kwargs):
        raise AssertionError("images were decoded before the error")

    monkeypatch.setattr("medssl.data.dataset.prepare_data", decoded)  # evaluate imports it when it runs
    monkeypatch.setattr("medssl.train.api.prepare_data", decoded)


def write_pickle(path: Path) -> Path:
    torch.save({"cls_token": torch.zeros(1, 1, 64), "optimizer": Path("x")}, path)
    return path


def write_text(path: Path) -> Path:
    path.write_text("not weights")
    return path


def write_other_architecture(path: Path) -> Path:
    save_file(tiny_timm("test_resnet.r160_in1k").state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("write", "name", "fragments"),
    [
        (
            write_other_architecture,
            "resnet.safetensors",
            ("do not fit timm:test_vit", "missing key 'cls_token'"),
        ),
        (write_text, "notes.pth", ("notes.pth: not a checkpoint",)),
        (write_text, "notes.safetensors", ("notes.safetensors: not a safetensors checkpoint",)),
        (write_pickle, "pickled.pth", ("pickled.pth: refused: it holds pickled Python objects",)),
    ],
)
def test_bad_weights_files_are_one_line(
    tissue: Path, capsys, monkeypatch, no_decoding, write, name: str, fragments: tuple[str, ...]
) -> None:
    path = write(tissue.parent / name)
    code, err = run_main(capsys, monkeypatch, *evaluate_spec(tissue, f"timm:{TIMM_NAME}@{path}"))
    assert_one_error_line(code, err, *fragments)


def test_an_image_size_the_model_cannot_take_is_one_line(
    tissue: Path, timm_files: TimmFiles, capsys, monkeypatch, no_decoding
) -> None:
    spec = f"timm:{TIMM_NAME}@{timm_files.file('.pth')}"
    args = evaluate_spec(tissue, spec)
    args[args.index("--image-size") + 1] = "40"
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(
        code, err, f"{spec} cannot take 40 px images: its patch is 16 px", "set image_size 32 or 48"
    )


def test_missing_weights_offline_and_unknown_names_are_one_line(
    tissue: Path, offline_hub: Path, capsys, monkeypatch, no_decoding
) -> None:
    code, err = run_main(capsys, monkeypatch, *evaluate_spec(tissue, f"timm:{TIMM_NAME}"))
    assert_one_error_line(
        code, err, "no local weights", "hf download timm/test_vit.r160_in1k", str(offline_hub)
    )
    code, err = run_main(capsys, monkeypatch, *evaluate_spec(tissue, "timm:test_vitt"))
    assert_one_error_line(code, err, "timm has no model 'test_vitt'; closest names: test_vit")
    code, err = run_main(capsys, monkeypatch, *evaluate_spec(tissue, "hf:owkin/phikon"))
    assert_one_error_line(code, err, "hf download owkin/phikon", "models--owkin--phikon")


def test_a_model_too_large_for_memory_is_one_line_before_loading(
    tissue: Path, timm_files: TimmFiles, capsys, monkeypatch, no_decoding
) -> None:
    monkeypatch.setattr(weights, "available_memory", lambda: 1_000_000)  # 1 MB
    code, err = run_main(
        capsys, monkeypatch, *evaluate_spec(tissue, f"timm:{TIMM_NAME}@{timm_files.file('.bin')}")
    )
    assert_one_error_line(code, err, "0 M parameters and needs about", "GiB are available")


def test_a_foundation_model_can_be_fine_tuned(
    tissue: Path, hf_folders: dict[str, Path], capsys, monkeypatch
) -> None:
    args = evaluate_spec(tissue, f"hf:{hf_folders['dinov2']}", "--finetune-epochs", "1")
    args[args.index("--protocol") + 1] = "finetune"
    code, err = run_main(capsys, monkeypatch, *args)
    assert code == 0, err
    (row,) = read_results(tissue.parent / "out" / "results.csv")
    assert (row.encoder, row.method, row.protocol) == ("hf-dinov2", "foundation", "finetune")
    assert 0 <= row.metric("accuracy") <= 1


def pretrain_args(tmp_path: Path, backbone: str, init: str, size: int) -> list[str]:
    args = tiny_pretrain(
        tmp_path / "run", tmp_path / "cache", "--backbone", backbone, "--init", init, epochs=1
    )
    args[args.index("--image-size") + 1] = str(size)
    return args


@pytest.mark.parametrize(
    ("backbone", "init", "size", "fragments"),
    [
        ("vit_tiny", "random", 36, ("backbone vit_tiny cannot take 36 px images", "set image_size 32 or 40")),
        (
            "resnet18",
            "pretrained",
            32,
            ("init 'pretrained' loads the weights a timm:<name> backbone stands for",),
        ),
        (
            "timm:vit_small_patch14_dinov2.lvd142m",
            "pretrained",
            56,
            ("no local weights", "hf download timm/vit_small_patch14_dinov2.lvd142m model.safetensors"),
        ),
    ],
)
def test_pretrain_refuses_a_backbone_it_cannot_start_before_decoding(
    tmp_path: Path, offline_hub: Path, capsys, monkeypatch, no_decoding, backbone, init, size, fragments
) -> None:
    code, err = run_main(capsys, monkeypatch, *pretrain_args(tmp_path, backbone, init, size))
    assert_one_error_line(code, err, *fragments)
    assert not (tmp_path / "run" / "checkpoints").exists()
