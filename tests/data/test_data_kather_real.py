"""The real Kather 2016 tiles (``.data/`` of the checkout or beside it; skipped when absent): slides as groups,
inspect's warnings, grouped cross-validation and the few-slides validation case. Nothing is decoded."""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datagen import KATHER_CLASSES, REAL_KATHER

from medssl.data.inspect import inspect_dataset
from medssl.data.sources import load_table
from medssl.data.splits import cross_validation, make_split, straddling
from medssl.data.types import ImageTable

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not REAL_KATHER.is_dir(), reason=f"{REAL_KATHER} not present"),
]


@pytest.fixture(scope="module")
def table() -> ImageTable:
    return load_table(REAL_KATHER)


def slides(table: ImageTable, indices: np.ndarray) -> set[str]:
    return {table.records[i].group for i in indices}


def test_real_kather_slides(table: ImageTable) -> None:
    assert (table.layout, table.classes, len(table.records)) == ("kather2016", list(KATHER_CLASSES), 5000)
    assert table.group_kind == "slide" and all(r.group for r in table.records)
    assert sorted(set(table.groups)) == [f"CRC-Prim-HE-{n:02d}" for n in range(1, 11)]
    per_class = {
        name: Counter(r.group for r in table.records if r.label == c) for c, name in enumerate(table.classes)
    }
    assert per_class["08_EMPTY"]["CRC-Prim-HE-06"] == 590
    assert {"CRC-Prim-HE-04", "CRC-Prim-HE-10"}.isdisjoint(per_class["06_MUCOSA"])
    assert len(per_class["07_ADIPOSE"]) == 6


def test_real_kather_inspect(tmp_path: Path) -> None:
    report = inspect_dataset(REAL_KATHER, image_size=32, grid_path=tmp_path / "grid.png")
    assert (report.n_images, len(report.classes), report.groups) == (5000, 8, {"all": 10})
    text = report.to_text()
    assert "groups     10 slides (every image has one)" in text
    assert "class '08_EMPTY': slide CRC-Prim-HE-06 holds 590 of its 625 images (94%)" in text
    print(text)


def test_real_kather_grouped_5_fold_cv(table: ImageTable) -> None:
    with pytest.warns(UserWarning, match="class '08_EMPTY' is in only 2 slides"):
        folds = cross_validation(table, 5, 0.1, 0)
    tested = np.concatenate([fold["test"] for fold in folds])
    assert sorted(tested.tolist()) == list(range(5000))
    for k, fold in enumerate(folds, start=1):
        assert not straddling(table, fold)
        test = np.bincount(table.labels[fold["test"]], minlength=8).tolist()
        print(f"fold {k}: test slides {sorted(slides(table, fold['test']))}, per class {test}")


def test_real_kather_3918_tiles_of_8_slides_split(table: ImageTable, tmp_path: Path) -> None:
    """The issue's CSV: 3,918 tiles whose patient column holds 8 slides (no 03, 09) used to stop."""
    manifest = tmp_path / "kather8.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "patient"])
        for record in table.records:
            if record.group not in {"CRC-Prim-HE-03", "CRC-Prim-HE-09"}:
                writer.writerow([table.path(record), table.classes[record.label], record.group])
    subset = load_table(manifest)
    assert len(subset.records) == 3918 and len(set(subset.groups)) == 8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = make_split(subset, 0.1, 0.2, 0)
    assert any("validation images are drawn image by image" in str(w.message) for w in caught)
    assert not straddling(subset, split)
    print({part: len(indices) for part, indices in split.items()}, sorted(slides(subset, split["test"])))
