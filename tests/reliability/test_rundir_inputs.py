"""No input ends in a traceback, paths are checked, and the words are right (issue 17): each case here is
one line naming the setting or file and the fix, exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from medssl.data.dataset import prepare_data
from medssl.data.inspect import inspect_dataset
from medssl.models.encoder import build_encoder, save_encoder

from ..conftest import tiny_config
from ..data.datagen import make_folder
from .cli import assert_one_error_line, evaluate, run_main

README = Path(__file__).resolve().parents[2] / "README.md"


# -- paths ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["same", "inside"])
def test_out_inside_the_dataset_is_refused(tissue: Path, capsys, monkeypatch, where: str) -> None:
    out = tissue if where == "same" else tissue / "runs"
    for args in (evaluate(out, tissue), ["pretrain", "--data", str(tissue), "--out", str(out)]):
        code, err = run_main(capsys, monkeypatch, *args)
        assert_one_error_line(code, err, "is inside --data", "outside the dataset folder")
    assert sorted(p.name for p in tissue.iterdir()) == ["a", "b"]  # no checkpoints/ or logs/ class


def test_dataset_inside_out_is_refused(tissue: Path, capsys, monkeypatch) -> None:
    code, err = run_main(capsys, monkeypatch, *evaluate(tissue.parent, tissue))
    assert_one_error_line(code, err, "is inside --out")


def test_a_data_path_ending_in_dotdot_is_named_by_its_folder(tissue: Path, capsys, monkeypatch) -> None:
    out = tissue.parent / "runs" / "ev"
    code, err = run_main(capsys, monkeypatch, *evaluate(out, f"{tissue}/a/.."))
    assert code == 0, err
    assert (out / "tissue" / "eval" / "random-resnet18").is_dir()
    assert not (out.parent / "eval").exists()  # nothing written outside --out


def test_class_folder_linked_to_another_class_is_an_error(tissue: Path, capsys, monkeypatch) -> None:
    (tissue / "c").symlink_to(tissue / "a", target_is_directory=True)
    code, err = run_main(capsys, monkeypatch, *evaluate(tissue.parent / "out", tissue))
    assert_one_error_line(code, err, "is the same folder as 'a'")


@pytest.mark.parametrize("command", ["pretrain", "evaluate", "benchmark"])
def test_out_naming_a_file_is_an_error(tissue: Path, capsys, monkeypatch, command: str) -> None:
    out = tissue.parent / "file.txt"
    out.write_text("mine")
    args = {
        "pretrain": ["pretrain", "--data", "synthetic", "--out", str(out)],
        "evaluate": evaluate(out, tissue),
        "benchmark": ["benchmark", "--out", str(out)],
    }[command]
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, f"--out {out}", "is a file, not a folder")
    assert out.read_text() == "mine"


# -- inputs that used to end in a traceback -------------------------------------------------------------------


def test_a_balanced_20_image_folder_gets_a_split_that_works(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEDSSL_CACHE", str(tmp_path / "cache"))
    data = make_folder(tmp_path / "small", {"a": 10, "b": 10}, size=32, channels=3)
    prepared = prepare_data(tiny_config(tmp_path / "cache").model_copy(update={"path": str(data)}))
    for part in ("train", "val", "test"):
        assert set(prepared.labels[prepared.split[part]]) == {0, 1}, part
    code, err = run_main(capsys, monkeypatch, *evaluate(tmp_path / "out", data))
    assert code == 0, err


def test_inspect_states_the_smallest_class_that_can_be_split(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "tiny", {"a": 2, "b": 10}, size=32, channels=3)
    problems = inspect_dataset(data, grid_path=tmp_path / "grid.png").problems
    assert any(
        "class 'a' has 2 images outside the test split; a train/val/test split needs at least 3" in p
        for p in problems
    )


BAD_SETS = {
    "unclosed list": (["pretrain", "--data", "synthetic", "--set", "epochs=[1"], "--set epochs=[1: not valid YAML"),
    "reserved character": (["pretrain", "--data", "synthetic", "--set", "method=@x"], "--set method=@x"),
    "a value for a section": (["pretrain", "--set", "data=5"], "data: expected a section"),
    "section then key": (["pretrain", "--set", "data=5", "--set", "data.path=x"], "data is a value (5)"),
    "benchmark": (["benchmark", "--set", "pretrain.epochs=[1"], "--set pretrain.epochs=[1"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_SETS)
def test_bad_set_values_are_one_line(tmp_path: Path, capsys, monkeypatch, case: str) -> None:
    args, fragment = BAD_SETS[case]
    code, err = run_main(capsys, monkeypatch, *args, "--out", str(tmp_path / "r"))
    assert_one_error_line(code, err, fragment)


@pytest.mark.parametrize("content", ["{not json", '{"method": "simclr"}', "[1, 2]"])
def test_corrupt_or_incomplete_encoder_json_is_one_line(
    tissue: Path, capsys, monkeypatch, content: str
) -> None:
    run = tissue.parent / "pre"
    save_encoder(build_encoder("resnet18"), run, method="simclr", image_size=32)
    (run / "encoder.json").write_text(content)
    args = evaluate(tissue.parent / "out", tissue)
    args[args.index("random:resnet18")] = str(run)
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, f"{run / 'encoder.json'}: not a complete encoder description")


def test_an_unknown_backbone_in_encoder_json_names_the_file(tissue: Path, capsys, monkeypatch) -> None:
    run = tissue.parent / "pre"
    save_encoder(build_encoder("resnet18"), run, method="simclr", image_size=32)
    meta = json.loads((run / "encoder.json").read_text())
    (run / "encoder.json").write_text(json.dumps({**meta, "backbone": "resnet999"}))
    args = evaluate(tissue.parent / "out", tissue)
    args[args.index("random:resnet18")] = str(run)
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, f"{run / 'encoder.json'}: backbone 'resnet999' is unknown")


def test_a_truncated_pixel_cache_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "cache")
    first = np.array(prepare_data(config).images)
    (cache,) = (tmp_path / "cache").glob("*.npy")
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    again = prepare_data(config)
    np.testing.assert_array_equal(np.array(again.images), first)
    assert cache.stat().st_size > first.nbytes  # rewritten whole


# -- CSV manifests and class names (issue 25, item 8) ---------------------------------------------------------


def manifest(tissue: Path, label: dict[str, str] | None = None, group: str = "p{k}") -> list[str]:
    """``path,label,group`` rows of the tissue images, 2 images per group; ``label`` renames classes."""
    rows = ["path,label,group"]
    for name in ("a", "b"):
        for k in range(12):
            rows.append(
                f"{name}/img{k:03d}.png,{(label or {}).get(name, name)},{name}{group.format(k=k // 2)}"
            )
    return rows


def write_csv(tissue: Path, rows: list[str]) -> Path:
    (tissue / "list.csv").write_text("\n".join(rows) + "\n")
    return tissue / "list.csv"


def test_empty_group_cells_of_a_csv_are_named(tissue: Path, capsys, monkeypatch) -> None:
    rows = manifest(tissue)
    rows[2], rows[8] = rows[2].rsplit(",", 1)[0] + ",", rows[8].rsplit(",", 1)[0] + ",  "
    data = write_csv(tissue, rows)
    words = r"2 of 24 rows have an empty group cell \(line 3, 9\); each of those images is a group of its own"
    with pytest.warns(UserWarning, match=words):
        code, err = run_main(capsys, monkeypatch, *evaluate(tissue.parent / "out", data))
    assert code == 0, err
    assert any(re.match(words, p) for p in inspect_dataset(data, grid_path=tissue.parent / "g.png").problems)


def test_one_file_listed_under_two_paths_is_refused(tissue: Path, capsys, monkeypatch) -> None:
    data = write_csv(tissue, [*manifest(tissue), "./a/img000.png,b,b9"])
    code, err = run_main(capsys, monkeypatch, *evaluate(tissue.parent / "out", data))
    assert_one_error_line(code, err, "line 26: ./a/img000.png is the file a/img000.png again (also line 2)")


@pytest.mark.parametrize("layout", ["csv", "folder"])
def test_labels_that_differ_only_in_case_are_refused_and_inspected(
    tmp_path: Path, tissue: Path, capsys, monkeypatch, layout: str
) -> None:
    if layout == "csv":
        rows = manifest(tissue, {"a": "NORMAL", "b": "PNEUMONIA"})
        rows[2:6] = [row.replace("NORMAL", "normal") for row in rows[2:6]]
        data, kind = write_csv(tissue, rows), "labels"
    else:
        data = make_folder(
            tmp_path / "cased", {"NORMAL": 8, "normal": 4, "PNEUMONIA": 12}, size=32, channels=3
        )
        kind = "class folders"
    code, err = run_main(capsys, monkeypatch, *evaluate(tmp_path / "out", data))
    assert_one_error_line(code, err, f"{kind} 'NORMAL' and 'normal' differ only in letter case")
    problems = inspect_dataset(data, grid_path=tmp_path / "g.png").problems
    assert (
        "classes 'NORMAL' and 'normal' differ only in letter case, so they would be 2 classes; use one "
        "spelling for each class" in problems
    )


# -- words ----------------------------------------------------------------------------------------------------


def test_a_yaml_tag_is_said_to_be_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    config = tmp_path / "tag.yaml"
    config.write_text("epochs: !!python/object/apply:os.getcwd []\n")
    code, err = run_main(
        capsys, monkeypatch, "pretrain", "--config", str(config), "--out", str(tmp_path / "r")
    )
    line = assert_one_error_line(code, err, f"{config}: YAML tags such as !!python/... are refused")
    assert "fix the syntax" not in line


def test_true_is_not_a_number_of_epochs(tmp_path: Path, capsys, monkeypatch) -> None:
    config = tmp_path / "bool.yaml"
    config.write_text("epochs: true\ndata: {path: synthetic}\n")
    code, err = run_main(
        capsys, monkeypatch, "pretrain", "--config", str(config), "--out", str(tmp_path / "r")
    )
    assert_one_error_line(code, err, "epochs: Value error, expected a number, not true")
