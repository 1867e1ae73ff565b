"""Where and when a command writes (issue 25): never into the dataset, nothing before its checks pass, and a
folder it cannot write is one line naming it, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli import assert_one_error_line, run_main


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
