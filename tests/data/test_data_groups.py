"""Groups (patient, slide...) from every built-in layout, ``group_pattern`` and CSV columns, and the split
policies and grouped cross-validation that respect them, on fixtures in the real Kather 2016 naming."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from datagen import KATHER_CLASSES, make_chest_xray, make_folder, make_kather, make_site_folder

from medssl.data.dataset import DataConfig, prepare_data, prepare_folds, read_table
from medssl.data.groups import GROUP_KINDS, apply_group_pattern
from medssl.data.sources import load_table
from medssl.data.sources.kather import GROUPS as KATHER_GROUPS
from medssl.data.splits import cross_validation, groups_overlap, make_split, straddling
from medssl.data.types import ImageTable
from medssl.errors import ConfigError, DataError

PARTS = ("train", "val", "test")
KATHER = "Kather_texture_2016_image_tiles_5000"


@pytest.fixture(scope="module")
def kather_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 tiles (20 a class) from 10 slides, EMPTY 90 % from slide 06, as in the real set (16 px)."""
    return make_kather(tmp_path_factory.mktemp("kather"), per_class=20, size=16) / KATHER


@pytest.fixture(scope="module")
def kather(kather_dir: Path) -> ImageTable:
    return load_table(kather_dir)


def slides_of(table: ImageTable, indices: np.ndarray) -> set[str]:
    return {table.records[i].group for i in indices}


def assert_partition(table: ImageTable, split: dict[str, np.ndarray]) -> None:
    """Every image in exactly one part, and no group both in test and in train/val.

    (With 10 slides, validation cannot be whole slides too: it is drawn per image within the training slides.)
    """
    everything = np.concatenate([split[p] for p in PARTS])
    assert sorted(everything.tolist()) == list(range(len(table.records)))
    assert not straddling(table, split)
    assert slides_of(table, split["val"]) <= slides_of(table, split["train"])


@pytest.mark.parametrize(
    ("ref", "slide"),
    [
        ("01_TUMOR/10009_CRC-Prim-HE-03_009.tif_Row_301_Col_151.tif", "CRC-Prim-HE-03"),
        ("02_STROMA/10062_CRC-Prim-HE-02_003b.tif_Row_1_Col_301.tif", "CRC-Prim-HE-02"),
        ("08_EMPTY/100B0_CRC-Prim-HE-10_009.tif_Row_1_Col_301.tif", "CRC-Prim-HE-10"),
        ("08_EMPTY/tile.tif", None),
    ],
)
def test_kather_slide_from_real_tile_names(ref: str, slide: str | None) -> None:
    assert KATHER_GROUPS.parse(ref) == slide and KATHER_GROUPS.kind == "slide"


def test_every_builtin_layout_names_its_groups(tmp_path: Path, kather: ImageTable) -> None:
    chest = load_table(make_chest_xray(tmp_path / "chest"))
    assert chest.group_kind == "patient" and all(r.group for r in chest.records)
    assert kather.group_kind == "slide" and all(r.group for r in kather.records)
    assert len(set(kather.groups)) == 10
    empty = [r.group for r in kather.records if kather.classes[r.label] == "08_EMPTY"]
    assert empty.count("CRC-Prim-HE-06") == 18 and set(empty) == {"CRC-Prim-HE-06", "CRC-Prim-HE-10"}
    synthetic = read_table(DataConfig())
    assert synthetic.group_kind == "patient" and len(set(synthetic.groups)) == 120
    folder = load_table(make_folder(tmp_path / "plain", {"a": 2, "b": 2}))
    assert not folder.has_groups


@pytest.fixture
def site_folder(tmp_path: Path) -> Path:
    return make_site_folder(tmp_path / "ds")


def test_group_pattern_capture_group_or_whole_match(site_folder: Path) -> None:
    with pytest.warns(UserWarning, match=r"finds no group in 1 of 13 image paths \(e\.g\. a/scan\.png\)"):
        whole = read_table(DataConfig(path=str(site_folder), group_pattern=r"site\d", group_kind="site"))
    by_ref = {r.ref: r.group for r in whole.records}
    assert by_ref["a/site2_p2a_0.png"] == "site2" and by_ref["a/scan.png"] is None
    assert whole.group_kind == "site"
    with pytest.warns(UserWarning):
        captured = read_table(DataConfig(path=str(site_folder), group_pattern=r"_(p\d[ab])_"))
    assert {r.ref: r.group for r in captured.records}["b/site3_p3b_1.png"] == "p3b"
    assert captured.group_kind == "group"
    folder = read_table(DataConfig(path=str(site_folder), group_pattern=r"^([^/]+)/"))  # the class folder
    assert set(folder.groups) == {"a", "b"}


def test_group_pattern_overrides_a_builtin_parser(kather_dir: Path) -> None:
    table = read_table(DataConfig(path=str(kather_dir), group_pattern=r"HE-(\d+)_"))
    assert set(table.groups) == {f"{n:02d}" for n in range(1, 11)}


def test_bad_group_pattern_is_one_clear_error(site_folder: Path) -> None:
    with pytest.raises(ValueError, match=r"group_pattern '\(site' is not a valid regular expression"):
        DataConfig(path=str(site_folder), group_pattern="(site")
    with pytest.raises(DataError, match=r"group_pattern 'patient-\\d\+' matches none of the 13 image paths"):
        read_table(DataConfig(path=str(site_folder), group_pattern=r"patient-\d+"))
    with pytest.raises(DataError, match="group_pattern needs image files"):
        apply_group_pattern(read_table(DataConfig()), "synth")


def write_manifest(path: Path, table: ImageTable, column: str, keep: set[str] | None = None) -> Path:
    """A CSV manifest of ``table``'s images with their group in ``column`` (only the groups in ``keep``)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", column])
        for record in table.records:
            if keep is None or record.group in keep:
                writer.writerow([table.path(record), table.classes[record.label], record.group])
    return path


def test_csv_group_and_patient_columns(tmp_path: Path, kather: ImageTable) -> None:
    by_group = load_table(write_manifest(tmp_path / "g.csv", kather, "group"))
    assert by_group.group_kind == "group" and by_group.groups == kather.groups
    by_patient = load_table(write_manifest(tmp_path / "p.csv", kather, "patient"))
    assert by_patient.group_kind == "patient" and by_patient.groups == kather.groups
    slides = read_table(DataConfig(path=str(tmp_path / "p.csv"), group_kind="slide"))
    assert slides.group_kind == "slide"
    (tmp_path / "both.csv").write_text(f"path,label,patient,group\n{kather.path(kather.records[0])},x,a,b\n")
    with pytest.raises(DataError, match=r"both\.csv: both a group and a patient column; keep one"):
        load_table(tmp_path / "both.csv")


def test_group_kinds_match_the_config() -> None:
    from typing import get_args

    assert get_args(DataConfig.model_fields["group_kind"].annotation)[0].__args__ == GROUP_KINDS


@pytest.mark.parametrize("seed", range(4))
def test_grouped_split_never_puts_a_slide_on_two_sides(kather: ImageTable, seed: int) -> None:
    split = make_split(kather, 0.1, 0.2, seed)  # auto: grouped, since slides are known
    assert_partition(kather, split)
    assert slides_of(kather, split["test"]).isdisjoint(slides_of(kather, split["train"]))


@pytest.mark.parametrize("folds", [None, 4])
def test_with_enough_groups_no_group_is_in_two_parts(folds: int | None) -> None:
    table = read_table(DataConfig())  # synthetic: 120 patients
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough patients: validation is whole patients too
        splits = cross_validation(table, folds) if folds else [make_split(table)]
    for split in splits:
        assert sorted(np.concatenate([split[p] for p in PARTS]).tolist()) == list(range(600))
        assert not groups_overlap(table, split)


def test_random_split_warns_how_many_slides_straddle(kather: ImageTable) -> None:
    with pytest.warns(UserWarning, match=r"split: random puts (\d+) slides of 10 on both sides") as caught:
        split = make_split(kather, 0.1, 0.2, 0, policy="random")
    leaking = straddling(kather, split)
    assert len(leaking) >= 2
    assert f"puts {len(leaking)} slides of 10" in str(caught[0].message)
    assert sorted(np.concatenate([split[p] for p in PARTS]).tolist()) == list(range(len(kather.records)))


def test_grouped_needs_groups_and_auto_falls_back_to_random(tmp_path: Path) -> None:
    table = load_table(make_folder(tmp_path / "plain", {"a": 30, "b": 30}))
    with pytest.raises(DataError, match=r"split: grouped needs group ids.*set data\.group_pattern"):
        make_split(table, policy="grouped")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no leakage warning when no groups are known
        split = make_split(table)
    assert sum(len(split[p]) for p in PARTS) == 60


def test_few_slides_validation_is_image_level_and_test_whole_slides(
    tmp_path: Path, kather: ImageTable
) -> None:
    """The issue's case: a CSV of Kather tiles whose patient column holds 8 slides (no 03 and 09)."""
    keep = {f"CRC-Prim-HE-{n:02d}" for n in (1, 2, 4, 5, 6, 7, 8, 10)}
    table = load_table(write_manifest(tmp_path / "m.csv", kather, "patient", keep))
    with pytest.warns(UserWarning, match="too few to hold out 10% of them whole for validation"):
        split = make_split(table, 0.1, 0.2, 0)
    everything = np.concatenate([split[p] for p in PARTS])
    assert sorted(everything.tolist()) == list(range(len(table.records)))
    test, train, val = (slides_of(table, split[p]) for p in ("test", "train", "val"))
    assert test and test.isdisjoint(train | val) and val <= train
    assert len(split["val"]) == pytest.approx(0.1 * (len(split["train"]) + len(split["val"])), abs=3)


def test_when_groups_are_the_limit_the_error_says_so(tmp_path: Path, kather: ImageTable) -> None:
    keep = {"CRC-Prim-HE-03", "CRC-Prim-HE-05", "CRC-Prim-HE-07"}
    table = load_table(write_manifest(tmp_path / "m.csv", kather, "patient", keep))
    with pytest.raises(DataError, match=r"the 3 patients are the limit: .* needs at least 5 .* use folds: 3"):
        make_split(table, 0.1, 0.2, 0)


@pytest.mark.parametrize(("folds", "seed"), [(5, 0), (5, 1), (3, 2)])
def test_grouped_cv_tests_every_tile_once_and_whole_slides(kather: ImageTable, folds: int, seed: int) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = cross_validation(kather, folds, 0.1, seed)
    assert len(splits) == folds
    tested = np.concatenate([split["test"] for split in splits])
    assert sorted(tested.tolist()) == list(range(len(kather.records)))  # every tile tested exactly once
    for split in splits:
        assert_partition(kather, split)
        assert slides_of(kather, split["test"]).isdisjoint(slides_of(kather, split["train"]))
    messages = [str(w.message) for w in caught]
    assert any("class '08_EMPTY' is in only 2 slides" in m and "use folds: 2" in m for m in messages)
    assert any(
        f"of {folds} folds the training part holds" in m for m in messages
    )  # 8 or so slides: val is per image


def test_cv_that_cannot_work_says_why(tmp_path: Path, kather: ImageTable) -> None:
    with pytest.raises(DataError, match=r"folds: 11 needs at least 11 slides, found 10; use folds: 10"):
        cross_validation(kather, 11)
    single = {f"CRC-Prim-HE-{n:02d}" for n in range(1, 10)}  # no slide 10: EMPTY only on slide 06
    table = load_table(write_manifest(tmp_path / "m.csv", kather, "patient", single))
    with pytest.raises(DataError, match=r"class '08_EMPTY' is in one patient only \(CRC-Prim-HE-06\)"):
        cross_validation(table, 3)
    chest = load_table(make_chest_xray(tmp_path / "chest"))
    with pytest.raises(DataError, match="folds: 3 is for datasets without an official test split"):
        cross_validation(chest, 3)


def test_random_cv_tests_every_image_once_and_warns(kather: ImageTable) -> None:
    with pytest.warns(UserWarning, match="split: random puts 10 slides of 10 on both sides"):
        splits = cross_validation(kather, 4, 0.1, 0, policy="random")
    tested = np.concatenate([split["test"] for split in splits])
    assert sorted(tested.tolist()) == list(range(len(kather.records)))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_folds_through_prepare_and_split_csv(tmp_path: Path, kather_dir: Path) -> None:
    config = DataConfig(path=str(kather_dir), image_size=16, folds=5, cache_dir=str(tmp_path / "cache"))
    run = tmp_path / "run"
    folds = prepare_folds(config, run)
    assert [(d.fold, d.folds, d.policy) for d in folds] == [(k, 5, "grouped") for k in range(1, 6)]
    assert all(d.images is folds[0].images for d in folds)  # decoded once
    rows = read_rows(run / "split.csv")
    assert list(rows[0]) == ["ref", "label", "class", "slide", "split", "policy", "fold"]
    assert len(rows) == 5 * 160 and {r["policy"] for r in rows} == {"grouped"}
    tested = [r["ref"] for r in rows if r["split"] == "test"]
    assert sorted(tested) == sorted(r.ref for r in folds[0].table.records)
    third = prepare_data(config, run, fold=3)  # read back from split.csv
    for part in PARTS:
        np.testing.assert_array_equal(third.split[part], folds[2].split[part])
    with pytest.raises(ConfigError, match=r"data\.folds: 5 asks for cross-validation"):
        prepare_data(config, run)
    with pytest.raises(DataError, match=r"split\.csv: holds 5 folds \(grouped\) but the config asks for 3"):
        prepare_data(config.model_copy(update={"folds": 3}), run, fold=1)
    with pytest.raises(DataError, match=r"holds 5 folds \(grouped\) .* 5 folds \(random\)"):
        prepare_folds(config.model_copy(update={"split": "random"}), run)


def test_split_csv_keeps_the_patient_column_and_old_manifests(tmp_path: Path) -> None:
    root = make_chest_xray(tmp_path / "chest", train_patients=12)
    config = DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "cache"))
    data = prepare_data(config, tmp_path / "run")
    rows = read_rows(tmp_path / "run" / "split.csv")
    assert list(rows[0]) == ["ref", "label", "class", "patient", "split", "policy", "fold"]
    assert {r["fold"] for r in rows} == {""} and rows[0]["patient"]
    old = tmp_path / "old" / "split.csv"  # the manifest before policies: ref,label,class,patient,split
    old.parent.mkdir()
    with old.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ref", "label", "class", "patient", "split"])
        writer.writerows([r["ref"], r["label"], r["class"], r["patient"], r["split"]] for r in rows)
    again = prepare_data(config, old.parent)
    for part in PARTS:
        np.testing.assert_array_equal(again.split[part], data.split[part])


def test_an_old_tile_level_manifest_is_not_taken_for_grouped(tmp_path: Path, kather_dir: Path) -> None:
    """Kather runs before slides were known split tile by tile; resuming one under split: grouped is refused."""
    config = DataConfig(path=str(kather_dir), image_size=16, cache_dir=str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="split: random puts"):
        prepare_data(config.model_copy(update={"split": "random"}), tmp_path / "run")
    rows = read_rows(tmp_path / "run" / "split.csv")
    with (tmp_path / "run" / "split.csv").open("w", newline="") as handle:  # as written before policies
        writer = csv.writer(handle)
        writer.writerow(["ref", "label", "class", "patient", "split"])
        writer.writerows([r["ref"], r["label"], r["class"], "", r["split"]] for r in rows)
    with pytest.raises(
        DataError, match=r"holds one split \(random\) but the config asks for one split \(grouped\)"
    ):
        prepare_data(config, tmp_path / "run")
    assert prepare_data(config.model_copy(update={"split": "random"}), tmp_path / "run").policy == "random"


def test_inspect_kather_fixture_reports_slides_and_warnings(kather_dir: Path, tmp_path: Path) -> None:
    from medssl.data.inspect import inspect_dataset

    report = inspect_dataset(kather_dir, image_size=16, grid_path=tmp_path / "g.png", folds=5)
    assert (report.group_kind, report.groups, report.with_group) == ("slide", {"all": 10}, 160)
    assert report.groups_per_class == dict(zip(KATHER_CLASSES, [10] * 5 + [8, 6, 2], strict=True))
    text = report.to_text()
    assert "groups     10 slides (every image has one)" in text
    assert "class '08_EMPTY': slide CRC-Prim-HE-06 holds 18 of its 20 images (90%)" in text
    assert "class '08_EMPTY' is in 2 slides (CRC-Prim-HE-06, CRC-Prim-HE-10), fewer than 5 folds" in text
    assert "07_ADIPOSE' is in" not in text  # 6 slides: enough for 5 folds
