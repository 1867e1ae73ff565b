"""Where and when a command writes (issue 25): never into the dataset, nothing before its checks pass, and a
folder it cannot write is one line naming it, not a traceback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from .cli import assert_one_error_line, evaluate, run_main


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- pictures of a dataset ------------------------------------------------------------------------------------

PICTURES = {
    "inspect": lambda data, out: ["data", "inspect", str(data), "--image-size", "32", "--out", str(out)],
    "augment-preview": lambda data, out: ["augment-preview", "--data", str(data), "--out", str(out)],
}


@pytest.mark.parametrize("command", PICTURES)
def test_a_picture_is_never_written_into_the_dataset(tissue: Path, capsys, monkeypatch, command: str) -> None:
    before = files(tissue)
    for out in (tissue / "a" / "new.png", tissue / "a"):
        code, err = run_main(capsys, monkeypatch, *PICTURES[command](tissue, out))
        assert_one_error_line(
            code, err, f"--out {out}", "inside the dataset", "the next run would train on it"
        )
    assert files(tissue) == before  # 24 images, as before: no PNG became a training image


@pytest.mark.parametrize("command", PICTURES)
def test_a_picture_out_that_is_a_folder_gets_the_file_inside(
    tissue: Path, capsys, monkeypatch, command: str
) -> None:
    folder = tissue.parent / "pictures"
    folder.mkdir()
    code, err = run_main(capsys, monkeypatch, *PICTURES[command](tissue, folder))
    assert code == 0, err
    (picture,) = folder.iterdir()
    assert picture.suffix == ".png" and picture.read_bytes().startswith(b"\x89PNG")


# -- folders that cannot be written ---------------------------------------------------------------------------


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made unwritable for this user: immutable for root (whom file modes do not stop), else
    mode 555; skips the test where neither is possible."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here (root ignores file modes)")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        yield folder
    finally:
        subprocess.run(undo, check=True)


TINY_PRETRAIN = ["--image-size", "32", "--epochs", "1", "--batch-size", "8", "--accelerator", "cpu"]


@pytest.mark.parametrize("command", ["pretrain", "evaluate"])
def test_a_read_only_out_is_one_line(tissue: Path, capsys, monkeypatch, command: str) -> None:
    parent = tissue.parent / "shared"
    parent.mkdir()
    out = parent / "run"
    args = {
        "pretrain": ["pretrain", "--data", str(tissue), *TINY_PRETRAIN, "--out", str(out)],
        "evaluate": evaluate(out, tissue),
    }[command]
    with read_only(parent):
        code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, f"--out {out}: {parent} is not writable", "choose another folder")


def test_report_of_a_read_only_run_directory_is_one_line(tissue: Path, capsys, monkeypatch) -> None:
    run = tissue.parent / "eval"
    assert run_main(capsys, monkeypatch, *evaluate(run, tissue))[0] == 0
    with read_only(run):
        code, err = run_main(capsys, monkeypatch, "report", str(run))
    assert_one_error_line(code, err, f"{run}: {run} is not writable", "copy it and report the copy")
    assert not (run / "report.md").exists()


# -- nothing is written before the checks pass ----------------------------------------------------------------


def test_pretrain_on_a_gpu_that_is_not_there_writes_nothing(tissue: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    out = tissue.parent / "run"
    args = ["pretrain", "--data", str(tissue), *TINY_PRETRAIN, "--out", str(out), "--accelerator", "gpu"]
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, "--accelerator gpu: no GPU is visible here", "--accelerator cpu")
    assert not out.exists()  # no config.yaml, split.csv or settings.json
    out.mkdir()
    (out / "mine.txt").write_text("an earlier run")
    code, err = run_main(capsys, monkeypatch, *args, "--restart")
    assert code == 2 and files(out) == ["mine.txt"]  # --restart moved nothing aside either
