"""A run directory never lies (issue 17): reruns with other settings are refused naming what changed,
``--resume`` checks the run before writing anything, evaluation never duplicates a cell, and Ctrl+C says
what was really saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from medssl.errors import Interrupted
from medssl.rundir.results import read_results
from medssl.rundir.settings import read_registry, settings_key
from medssl.study import grid
from medssl.train.api import LAST, pretrain
from medssl.train.config import PretrainConfig

from ..conftest import tiny_config
from ..data.datagen import make_folder
from .cli import assert_one_error_line, run_main, tiny_pretrain, tiny_study


def study_file(tmp_path: Path, cache: Path) -> Path:
    return tiny_study(tmp_path, cache, {"epochs": 1, "batch_size": 32, "max_steps_per_epoch": 2}, k=5)


def snapshot(run: Path) -> dict[str, bytes]:
    names = ["results.csv", "config.yaml", "tiny/pretrain/simclr-resnet18-random/encoder.pt"]
    return {name: (run / name).read_bytes() for name in names}


CHANGED = ("--set", "pretrain.epochs=3", "--set", "evaluation.k=7", "--set", "datasets.tiny.image_size=48")


def test_benchmark_rerun_with_changed_settings_is_refused_then_restarted(
    tmp_path: Path, pixel_cache: Path, capsys, monkeypatch
) -> None:
    study, run = study_file(tmp_path, pixel_cache), tmp_path / "run"
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(run))
    assert code == 0, err
    first = snapshot(run)
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(run), *CHANGED)
    line = assert_one_error_line(code, err, "pretrain.epochs: 1 -> 3", "evaluation.k: 5 -> 7", "--restart")
    assert "datasets.tiny.image_size: 32 -> 48" in line
    assert snapshot(run) == first  # nothing written: results, encoder and config.yaml as they were
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(run))
    assert code == 0 and snapshot(run)["results.csv"] == first["results.csv"]  # same settings: nothing rerun

    code, err = run_main(
        capsys, monkeypatch, "benchmark", str(study), "--out", str(run), *CHANGED, "--restart"
    )
    assert code == 0, err
    (kept,) = tmp_path.glob("run.previous-*")
    assert snapshot(kept) == first  # the old run is kept whole, beside the new one
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["pretrain"]["epochs"] == 3 and config["evaluation"]["k"] == 7
    encoder = json.loads((run / "tiny/pretrain/simclr-resnet18-random/encoder.json").read_text())
    assert encoder["epochs"] == 3 and encoder["image_size"] == 48
    registry = read_registry(run)
    for row in read_results(run / "results.csv"):  # each row says what made it, and that is config.yaml
        settings = registry[row.settings_key]
        assert settings["evaluation"]["k"] == 7 and settings["data"]["image_size"] == 48
    assert "| 48 px |" in (run / "report.md").read_text()  # the report's size is the rows' own


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, pixel_cache: Path) -> Path:
    """A 1-epoch SimCLR run (the CLI's tiny_pretrain settings) with its encoder removed, as if stopped
    right after the last checkpoint."""
    run = tmp_path_factory.mktemp("simclr") / "run"
    config = PretrainConfig(
        method="simclr", epochs=1, batch_size=16, knn_k=10, accelerator="cpu", seed=0, progress_bar=False,
        max_steps_per_epoch=4, data=tiny_config(pixel_cache),
    )  # fmt: skip
    pretrain(config, run)
    for name in ("encoder.pt", "encoder.json"):
        (run / name).unlink()
    return run


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize(
    ("option", "change"),
    [
        (("--method", "byol"), 'method: "simclr" -> "byol"'),
        (("--backbone", "efficientnet_lite0"), 'backbone: "resnet18" -> "efficientnet_lite0"'),
        (("--image-size", "48"), "data.image_size: 32 -> 48"),
        (("--seed", "1"), "seed: 0 -> 1"),
    ],
)
def test_resume_with_other_settings_is_refused_before_anything_is_written(
    finished_run: Path, tmp_path: Path, pixel_cache: Path, capsys, monkeypatch, option, change
) -> None:
    run = copy_run(finished_run, tmp_path)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    args = tiny_pretrain(run, pixel_cache, "--resume", epochs=1)
    code, err = run_main(capsys, monkeypatch, *args, *option)
    assert_one_error_line(code, err, f"{run}: this run was made with other settings", change, "--restart")
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # config.yaml included: it still says what the checkpoint was made with


def test_resume_on_changed_data_is_refused(tmp_path: Path, pixel_cache: Path, capsys, monkeypatch) -> None:
    data = make_folder(tmp_path / "tissue", {"a": 12, "b": 12}, size=32, channels=3)
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(data), "--image-size", "32", "--epochs", "1", "--batch-size", "8",
            "--knn-k", "5", "--accelerator", "cpu", "--set", f"data.cache_dir={pixel_cache}",
            "--set", "progress_bar=false", "--set", "max_steps_per_epoch=1", "--out", str(run)]  # fmt: skip
    code, err = run_main(capsys, monkeypatch, *args)
    assert code == 0, err
    (run / "encoder.json").unlink()
    image = data / "a" / "img000.png"
    image.write_bytes((data / "b" / "img000.png").read_bytes())  # same file names, other pixels
    code, err = run_main(capsys, monkeypatch, *args, "--resume")
    assert_one_error_line(code, err, "1 image changed: a/img000.png", "nothing was changed", "--restart")
    assert not (run / "encoder.json").exists()


def test_resume_removes_temporaries_left_by_a_killed_write(
    finished_run: Path, tmp_path: Path, pixel_cache: Path, capsys, monkeypatch
) -> None:
    run = copy_run(finished_run, tmp_path)
    for name in (".best.ckpt.tmp4242", ".best.ckpt.tmp4242.ckpt", ".last.ckpt.tmp77.ckpt"):
        (run / "checkpoints" / name).write_bytes(b"half a checkpoint")
    code, err = run_main(capsys, monkeypatch, *tiny_pretrain(run, pixel_cache, "--resume", epochs=1))
    assert code == 0, err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", LAST]
    assert (run / "encoder.json").is_file()


def evaluate_args(out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--encoder", "random:resnet18", "--data", "synthetic", "--image-size", "32",
            "--protocol", "knn", "--k", "5", "--bootstrap", "100", "--device", "cpu", "--out", str(out),
            *extra]  # fmt: skip


@pytest.fixture
def evaluated(tmp_path: Path, pixel_cache: Path, capsys, monkeypatch) -> Path:
    """An evaluation directory holding one kNN cell of an untrained ResNet-18 on synthetic images."""
    monkeypatch.setenv("MEDSSL_CACHE", str(pixel_cache))
    out = tmp_path / "eval"
    assert run_main(capsys, monkeypatch, *evaluate_args(out))[0] == 0
    return out


def test_evaluate_rerun_skips_finished_cells_and_replaces_only_when_asked(
    evaluated: Path, capsys, monkeypatch
) -> None:
    out = evaluated
    first = (out / "results.csv").read_bytes()
    code, err = run_main(capsys, monkeypatch, *evaluate_args(out))
    assert code == 0 and (out / "results.csv").read_bytes() == first  # no duplicate row
    code, err = run_main(capsys, monkeypatch, *evaluate_args(out, "--k", "7"))
    assert_one_error_line(code, err, "evaluation.k: 5 -> 7", "--replace")
    assert (out / "results.csv").read_bytes() == first
    code, err = run_main(capsys, monkeypatch, *evaluate_args(out, "--k", "7", "--replace"))
    assert code == 0, err
    (row,) = read_results(out / "results.csv")
    assert read_registry(out)[row.settings_key]["evaluation"]["k"] == 7


@pytest.fixture
def restore_sigint():
    """Lightning ignores SIGINT after a KeyboardInterrupt: give the test process its handler back."""
    import signal

    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


class _CtrlC:
    """A callback that presses Ctrl+C at the first training step, before any checkpoint exists."""

    def __call__(self, *args: object) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_before_the_first_checkpoint_does_not_claim_one(
    tmp_path: Path, pixel_cache: Path, tiny_data, restore_sigint
) -> None:
    import pytorch_lightning as pl

    stop = pl.Callback()
    stop.on_train_batch_end = _CtrlC()  # type: ignore[method-assign]
    config = PretrainConfig(
        epochs=2, batch_size=16, max_steps_per_epoch=2, knn_k=10, progress_bar=False, accelerator="cpu",
        data=tiny_config(pixel_cache),
    )  # fmt: skip
    with pytest.raises(Interrupted) as stopped:
        pretrain(config, tmp_path / "run", data=tiny_data, callbacks=[stop])
    assert not (tmp_path / "run" / "checkpoints" / LAST).exists()
    assert "no epoch had finished, so nothing was saved" in str(stopped.value)
    assert "is saved in" not in str(stopped.value)


def test_ctrl_c_in_a_benchmark_advises_the_benchmark_command(
    tmp_path: Path, pixel_cache: Path, capsys, monkeypatch, restore_sigint
) -> None:
    monkeypatch.setattr(grid._PretrainProgress, "on_train_epoch_end", _CtrlC())
    study = study_file(tmp_path, pixel_cache)
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(tmp_path / "run"))
    assert code == 130 and "Traceback" not in err
    assert "rerun the same `medssl benchmark` command" in err and "--resume" not in err


def test_rows_keyed_by_an_older_medssl_count_as_finished(evaluated: Path, capsys, monkeypatch) -> None:
    """A row whose recorded settings lack a key that this medssl added is the same cell, not a changed one."""
    out = evaluated
    (row,) = read_results(out / "results.csv")
    older = read_registry(out)[row.settings_key]
    del older["data"]["split_seed"]  # as if written before split_seed existed
    old_key = settings_key(older)
    (out / "settings.json").write_text(json.dumps({old_key: older}))
    text = (out / "results.csv").read_text().replace(row.settings_key, old_key)
    (out / "results.csv").write_text(text)
    code, err = run_main(capsys, monkeypatch, *evaluate_args(out))
    assert code == 0, err
    assert (out / "results.csv").read_text() == text  # skipped: not refused, not duplicated
