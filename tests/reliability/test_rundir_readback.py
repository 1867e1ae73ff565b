"""What a run directory says is checked when it is read back (issue 25: item 5; of item 8 the deleted
settings.json and the report's command).

A repeated, conflicting, incomplete or unreadable row of ``results.csv`` is named in the report and on the
command line and counted once; a rerun into the same folder repairs the file, keeping the file as it was
beside it, so nothing is lost. Each case damages a copy of one finished 2-fold study."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from medssl.cli import main
from medssl.rundir.results import RESULTS
from medssl.rundir.settings import SETTINGS

from .cli import evaluate, run_main

Damage = Callable[[Path], None]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, pixel_cache: Path) -> tuple[Path, Path]:
    """(study file, run): the issue's tiny study, 2 folds of 60 generated images, SimCLR for 1 epoch and an
    untrained ResNet-18, kNN with k=5."""
    folder = tmp_path_factory.mktemp("cv")
    config = {
        "datasets": {"d": {"path": "synthetic", "image_size": 32, "folds": 2, "cache_dir": str(pixel_cache),
                           "synthetic": {"n_images": 60, "size": 32}}},
        "methods": ["simclr"],
        "pretrain": {"epochs": 1, "batch_size": 16, "knn_k": 5, "accelerator": "cpu", "max_steps_per_epoch": 2},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn"], "label_fractions": [1.0], "k": 5, "n_bootstrap": 100},
    }  # fmt: skip
    study, run = folder / "cv.yaml", folder / "my run"
    study.write_text(yaml.safe_dump(config))
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as stop:
        patch.setattr(sys, "argv", ["medssl", "benchmark", str(study), "--out", str(run)])
        main()
    assert stop.value.code in (0, None)
    return study, run


def _copy(source: str, target: str) -> None:
    """Small files are copied; checkpoints and weights (never rewritten in place) are hard-linked."""
    if os.path.getsize(source) > 2**20:
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def damaged_copy(finished: tuple[Path, Path], tmp_path: Path, damage: Damage) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished[1], run, copy_function=_copy)
    for stale in run.glob("report*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    damage(run / RESULTS)
    return run


def rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results.csv, without their wall-clock time (a cell evaluated again takes another)."""
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(handle)]


def tables(report: Path) -> list[str]:
    return [line for line in report.read_text().splitlines() if line.startswith("|")]


def append_copy(path: Path) -> None:
    with path.open("a") as handle:
        handle.write(path.read_text().splitlines()[-1] + "\n")


def append_conflict(path: Path) -> None:
    last = next(csv.DictReader(path.open()))  # the first row, again, with another accuracy
    last["accuracy"] = "0.999"
    with path.open("a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=list(last), lineterminator="\n").writerow(last)


def append_garbage(path: Path) -> None:
    header = path.read_text().splitlines()[0]
    with path.open("a") as handle:
        handle.write(f"a line a text editor left\n{header}\n")


def drop_accuracy(path: Path) -> None:
    with path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    columns = [name for name in table[0] if name != "accuracy"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)


def add_notes(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",note", *(line + ",checked" for line in lines[1:])]) + "\n")


CASES: dict[str, tuple[Damage, str, bool]] = {
    # damage, words of the warning, whether the report's tables stay those of the intact run
    "exact copy": (append_copy, "results.csv: line 6 repeats line 5 exactly; counted once", True),
    "conflicting copy": (
        append_conflict,
        "results.csv: line 6 is a second row of cell d/simclr-resnet18-random knn",
        True,
    ),
    "lines that are no row": (append_garbage, "results.csv: lines 6, 7 are not results rows", True),
    "missing column": (drop_accuracy, "results.csv has no column accuracy: the report shows – for it", False),
    "unknown column": (add_notes, "results.csv has columns medssl does not write (note)", True),
}


@pytest.mark.parametrize("case", CASES)
def test_damaged_results_are_named_counted_once_and_repaired_by_a_rerun(
    finished: tuple[Path, Path], tmp_path: Path, capsys, monkeypatch, case: str
) -> None:
    damage, words, same_tables = CASES[case]
    study, intact = finished
    run = damaged_copy(finished, tmp_path, damage)
    damaged = (run / RESULTS).read_bytes()

    code, err = run_main(capsys, monkeypatch, "report", str(run))
    assert code == 0 and f"warning: {words}" in err, err
    assert words in (run / "report.md").read_text()
    if same_tables:  # e.g. not a mean over 3 rows of 2 folds, and the pooled columns filled
        assert tables(run / "report.md") == tables(intact / "report.md")

    with pytest.warns(UserWarning, match=f"{run / RESULTS}: repaired: .*the file as it was is kept as"):
        code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(run))
    assert code == 0, err
    assert rows(run / RESULTS) == rows(intact / RESULTS)  # re-evaluated where a value was missing
    (kept,) = run.glob(f"{RESULTS}.previous-*")
    assert kept.read_bytes() == damaged  # nothing lost
    assert "warning: results.csv" not in err and "Warning" not in (run / "report.md").read_text()


def test_evaluate_repairs_results_too(tissue: Path, capsys, monkeypatch) -> None:
    out = tissue.parent / "eval"
    assert run_main(capsys, monkeypatch, *evaluate(out, tissue))[0] == 0
    first = (out / RESULTS).read_bytes()
    append_copy(out / RESULTS)
    with pytest.warns(UserWarning, match="repaired: removed 1 exact copy of a row"):
        code, err = run_main(capsys, monkeypatch, *evaluate(out, tissue))
    assert code == 0, err
    assert (out / RESULTS).read_bytes() == first


def test_a_deleted_settings_json_is_named_and_recorded_again(
    finished: tuple[Path, Path], tmp_path: Path, capsys, monkeypatch
) -> None:
    study, intact = finished
    run = damaged_copy(finished, tmp_path, lambda results: (results.parent / SETTINGS).unlink())
    code, err = run_main(capsys, monkeypatch, "report", str(run))
    assert code == 0, err
    assert "warning: settings.json is missing: the settings that made 4 results rows" in err
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(run))
    assert code == 0 and "settings.json" not in err, err
    assert json.loads((run / SETTINGS).read_text()) == json.loads((intact / SETTINGS).read_text())


def test_evaluate_records_a_deleted_settings_json_again(tissue: Path, capsys, monkeypatch) -> None:
    out = tissue.parent / "eval"
    assert run_main(capsys, monkeypatch, *evaluate(out, tissue))[0] == 0
    recorded = (out / SETTINGS).read_text()
    (out / SETTINGS).unlink()
    assert run_main(capsys, monkeypatch, *evaluate(out, tissue))[0] == 0
    assert (out / SETTINGS).read_text() == recorded


def test_the_reproduce_command_pastes_into_a_shell(finished: tuple[Path, Path]) -> None:
    study, run = finished  # run: ".../my run", a folder name with a space
    report = (run / "report.md").read_text()
    command = report.split("Reproduce every number in this report with:")[1].split("```")[1].strip()
    assert shlex.split(command) == ["medssl", "benchmark", str(study), "--out", str(run)]
