"""split.csv: its exact bytes, a round trip, manifests of older releases, and interrupted rewrites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medssl.data.types import ImageRecord, ImageTable
from medssl.errors import DataError
from medssl.rundir.split import SPLIT, load_split, read_manifest, read_split_rows, save_split

RECORDS = [ImageRecord(f"c{i % 2}/img,{i}.png", i % 2, f"s{i // 2}" if i != 5 else None) for i in range(6)]
SINGLE = {"train": np.array([0, 1, 4]), "val": np.array([5]), "test": np.array([2, 3])}
FOLDS = [SINGLE, {"train": np.array([2, 3, 5]), "val": np.array([4]), "test": np.array([0, 1])}]


def table(tmp_path: Path) -> ImageTable:
    return ImageTable("folder", tmp_path, ["normal", 'odd "b"'], RECORDS, group_kind="slide")


def test_one_split_is_written_exactly_as_before_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / SPLIT
    save_split(path, table(tmp_path), SINGLE, "grouped")
    assert path.read_bytes() == (
        b"ref,label,class,slide,split,policy,fold\r\n"
        b'"c0/img,0.png",0,normal,s0,train,grouped,\r\n'
        b'"c1/img,1.png",1,"odd ""b""",s0,train,grouped,\r\n'
        b'"c0/img,2.png",0,normal,s1,test,grouped,\r\n'
        b'"c1/img,3.png",1,"odd ""b""",s1,test,grouped,\r\n'
        b'"c0/img,4.png",0,normal,s2,train,grouped,\r\n'
        b'"c1/img,5.png",1,"odd ""b""",,val,grouped,\r\n'
    )
    splits, policy, folds = read_manifest(path, table(tmp_path))
    assert policy == "grouped" and not folds
    assert {part: ids.tolist() for part, ids in splits[0].items()} == {
        k: v.tolist() for k, v in SINGLE.items()
    }
    assert read_split_rows(path).group_kind == "slide"


def test_folds_round_trip_with_one_row_per_image_and_fold(tmp_path: Path) -> None:
    path = tmp_path / SPLIT
    save_split(path, table(tmp_path), FOLDS, "random", folds=True)
    rows = read_split_rows(path).rows
    assert [row["fold"] for row in rows] == ["1"] * 6 + ["2"] * 6
    splits, policy, folds = read_manifest(path, table(tmp_path))
    assert folds and policy == "random" and len(splits) == 2
    assert [s["test"].tolist() for s in splits] == [[2, 3], [0, 1]]
    with pytest.raises(DataError, match="holds 2 cross-validation folds"):
        load_split(path, table(tmp_path))


def test_a_manifest_from_before_policies_and_folds_still_reads(tmp_path: Path) -> None:
    path = tmp_path / SPLIT
    path.write_text(
        "ref,label,class,patient,split\r\n"
        '"c0/img,0.png",0,normal,p1,train\r\n"c1/img,1.png",1,x,p2,val\r\n"c0/img,2.png",0,normal,p3,test\r\n'
    )
    assert {k: v.tolist() for k, v in load_split(path, table(tmp_path)).items()} == {
        "train": [0],
        "val": [1],
        "test": [2],
    }
    assert read_manifest(path, table(tmp_path))[1:] == ("", False)
    assert read_split_rows(path).group_kind == "patient"


def test_an_image_missing_from_the_dataset_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / SPLIT
    path.write_text("ref,label,class,slide,split,policy,fold\nelsewhere.png,0,a,,train,random,\n")
    with pytest.raises(DataError, match=r"image 'elsewhere\.png' is not in the dataset; delete the manifest"):
        read_manifest(path, table(tmp_path))


def test_an_interrupted_rewrite_leaves_the_old_manifest(tmp_path: Path, killed_before_rename) -> None:
    path = tmp_path / SPLIT
    save_split(path, table(tmp_path), SINGLE, "grouped")
    before = path.read_bytes()
    killed_before_rename()
    with pytest.raises(KeyboardInterrupt):
        save_split(path, table(tmp_path), FOLDS, "random", folds=True)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [SPLIT]
