"""A rerun into a run directory never makes it lie (issue 25): a second process on the same --out is refused
naming the first, changed data and a narrowed study are refused naming what changed, and the words of
``--restart --dry-run`` and ``status`` are true."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from medssl.study import load_study, run_study

from ..data.datagen import make_folder, write_image
from .cli import ENV, WAIT, assert_one_error_line, run_main, tiny_study


def study_file(folder: Path, cache: Path, **pretrain: object) -> Path:
    settings = {"epochs": 1, "batch_size": 32, "max_steps_per_epoch": 2, **pretrain}
    return tiny_study(folder, cache, settings, k=5)


def run_files(run: Path) -> dict[str, bytes]:
    """Every file of a run directory but its lock files, by path."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, pixel_cache: Path) -> tuple[Path, Path]:
    """(study.yaml, run): the tiny SimCLR + random ResNet-18 study, finished."""
    folder = tmp_path_factory.mktemp("finished")
    study = study_file(folder, pixel_cache)
    run_study(load_study(study), folder / "run", show_progress=False)
    return study, folder / "run"


@pytest.fixture
def run(finished: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished study's run directory, and its study file."""
    study, original = finished
    shutil.copytree(original, tmp_path / "run")
    return study, tmp_path / "run"


# -- two processes, one --out ---------------------------------------------------------------------------------


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        assert process.poll() is None, "the first run ended before it began its cells"
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_second_benchmark_on_the_same_out_is_refused_naming_the_first(
    tmp_path: Path, pixel_cache: Path, capsys, monkeypatch
) -> None:
    study = study_file(tmp_path, pixel_cache, epochs=1000, max_steps_per_epoch=1)  # minutes: it is stopped
    out = tmp_path / "run"
    command = [sys.executable, "-m", "medssl.cli", "benchmark", str(study), "--out", str(out)]
    first = subprocess.Popen(
        command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(out / "config.yaml", first)  # written once the first holds the run
        for extra in ([], ["--restart"]):  # this test's process is the second one
            code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(out), *extra)
            assert_one_error_line(
                code, err, f"another medssl run is writing into this folder (PID {first.pid} on"
            )
            assert "--resume" not in err
        assert not list(tmp_path.glob("run.previous-*"))  # --restart did not move the running study away
        assert first.poll() is None  # the first one runs on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    from medssl.rundir.lock import RunLock

    RunLock.take(out).release()  # a killed run leaves nothing locked


def test_a_checkpoint_that_vanished_while_written_does_not_blame_the_disk(
    tmp_path: Path, monkeypatch
) -> None:
    from medssl.errors import TrainingError
    from medssl.train import checkpoint

    monkeypatch.setattr(checkpoint, "torch_save", lambda obj, path: None)  # the temporary file never appears
    with pytest.raises(TrainingError) as error:
        checkpoint.AtomicCheckpointIO().save_checkpoint({}, tmp_path / "last.ckpt")
    message = str(error.value)
    assert "No such file or directory" in message and "free disk space" not in message
    assert "no other process writes into it" in message


# -- changed data -----------------------------------------------------------------------------------------------


def test_a_rerun_on_changed_data_is_refused_naming_the_change(
    tmp_path: Path, pixel_cache: Path, capsys, monkeypatch
) -> None:
    data = make_folder(tmp_path / "tissue", {"a": 10, "b": 10}, size=32, channels=3)
    study = study_file(tmp_path, pixel_cache)
    config = yaml.safe_load(study.read_text())
    config["datasets"]["tiny"] = {"path": str(data), "image_size": 32, "cache_dir": str(pixel_cache)}
    study.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    args = ["benchmark", str(study), "--out", str(out)]
    assert run_main(capsys, monkeypatch, *args)[0] == 0
    before = run_files(out)
    write_image(data / "a" / "new1.png", 101)
    write_image(data / "b" / "new2.png", 102)
    for extra in ([], ["--set", "pretrain_seeds=2"], ["--dry-run"]):  # not reused, nor a seed trained on it
        code, err = run_main(capsys, monkeypatch, *args, *extra)
        assert_one_error_line(code, err, f"{out / 'tiny'}: the dataset changed", "2 images added: a/new1.png")
        assert "--restart" in err and run_files(out) == before
    code, err = run_main(capsys, monkeypatch, *args, "--restart")
    assert code == 0, err
    (kept,) = tmp_path.glob("run.previous-*")
    assert run_files(kept) == before  # the old run whole, beside the new one on the new data
    assert "a/new1.png" in (out / "tiny" / "split.csv").read_text()


# -- a narrowed study -------------------------------------------------------------------------------------------


def test_narrowing_a_study_is_refused_so_config_and_report_describe_every_row(
    run: tuple[Path, Path], capsys, monkeypatch
) -> None:
    study, out = run
    before = run_files(out)
    for narrowed, dropped in [
        ("methods=[vicreg]", "encoder simclr-resnet18-random"),
        ("evaluation.label_fractions=[0.5]", "label fraction 1"),
    ]:
        code, err = run_main(
            capsys, monkeypatch, "benchmark", str(study), "--out", str(out), "--set", narrowed
        )
        assert_one_error_line(code, err, f"results of {dropped}, which this study no longer has", "--restart")
        assert run_files(out) == before  # config.yaml still lists simclr, whose rows the report shows


# -- nothing is written before the checks pass ------------------------------------------------------------------


def test_a_study_that_fails_its_data_checks_writes_nothing(
    tmp_path: Path, pixel_cache: Path, capsys, monkeypatch
) -> None:
    data = make_folder(tmp_path / "tissue", {"a": 20, "b": 2}, size=32, channels=3)  # b: too few to split
    study = study_file(tmp_path, pixel_cache)
    config = yaml.safe_load(study.read_text())
    config["datasets"]["tiny"] = {
        "path": str(data),
        "image_size": 32,
        "folds": 3,
        "cache_dir": str(pixel_cache),
    }
    study.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(out))
    assert_one_error_line(code, err, "too few images")
    assert not out.exists()  # no config.yaml, data folder or split.csv
    for index in range(2, 10):
        write_image(data / "b" / f"more{index}.png", 200 + index)
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(out), "--set",
                         "datasets.tiny.folds=2", "--dry-run")  # fmt: skip
    assert code == 0, err  # the corrected study is not refused as "made with other settings"


def test_launcher_slurm_without_slurm_writes_nothing(
    tmp_path: Path, pixel_cache: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda command: None)  # no sbatch, no srun
    out = tmp_path / "run"
    args = ["benchmark", str(study_file(tmp_path, pixel_cache)), "--out", str(out), "--launcher", "slurm"]
    code, err = run_main(capsys, monkeypatch, *args)
    assert code == 2 and "Traceback" not in err, err
    assert "launcher slurm: sbatch and srun not found" in err and "--launcher local" in err
    assert not out.exists()


# -- the words of --restart --dry-run and status ------------------------------------------------------------------


def test_restart_dry_run_with_changed_settings_lists_what_a_restart_runs(
    run: tuple[Path, Path], capsys, monkeypatch
) -> None:
    study, out = run
    before = run_files(out)
    args = ["benchmark", str(study), "--out", str(out), "--set", "pretrain.epochs=2", "--dry-run"]
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, "pretrain.epochs: 1 -> 2", "Pass --restart")
    monkeypatch.setattr(sys, "argv", ["medssl", *args, "--restart"])
    with pytest.raises(SystemExit) as stop:
        from medssl.cli import main

        main()
    listing = capsys.readouterr()
    assert stop.value.code in (0, None), listing.err
    assert f"the earlier run in {out} would be moved to {out}.previous-" in listing.out
    assert "0 done" in listing.out and "Pass --restart" not in listing.err
    assert run_files(out) == before and not list(out.parent.glob("run.previous-*"))


def test_status_of_a_corrupt_config_yaml_says_so_and_the_fix_works(
    run: tuple[Path, Path], capsys, monkeypatch
) -> None:
    study, out = run
    (out / "config.yaml").write_text("datasets: [unclosed\n")
    code, err = run_main(capsys, monkeypatch, "status", str(out))
    assert_one_error_line(
        code, err, f"{out / 'config.yaml'}: unreadable", "rerun the `medssl benchmark` command"
    )
    assert "no config.yaml" not in err
    results = (out / "results.csv").read_bytes()
    assert (
        run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(out))[0] == 0
    )  # the advised fix
    assert (out / "results.csv").read_bytes() == results
    assert run_main(capsys, monkeypatch, "status", str(out))[0] == 0
