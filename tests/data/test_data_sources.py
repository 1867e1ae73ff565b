"""Every adapter on small fixtures in the real layouts and file formats, and detection order."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from datagen import (
    KATHER_CLASSES,
    make_breakhis_archive,
    make_breakhis_kaggle,
    make_chest_xray,
    make_folder,
    make_kather,
    make_npz,
    write_image,
)

from medssl.data.sources import SOURCES, load_table
from medssl.data.sources.breakhis import patient_of as breakhis_patient
from medssl.data.sources.chest_xray import patient_of as chest_patient
from medssl.errors import DataError


def detected_by(path: Path | str) -> list[str]:
    return [name for name, source in SOURCES.items() if source.detect(Path(path))]


@pytest.fixture(autouse=True)
def _registered(tmp_path: Path) -> None:
    """``SOURCES`` is filled by the first ``load_table`` call."""
    with pytest.raises(DataError, match="no such file or folder"):
        load_table(tmp_path / "missing")


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1_bacteria_1.jpeg", "person1"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("person1946_bacteria_4874.jpeg", "person1946"),
        ("person999_virus_1677_2.jpeg", "person999"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0549-0001-0001.jpeg", "IM-0549"),
        ("NORMAL2-IM-0283-0001.jpeg", "NORMAL2-IM-0283"),
        ("NORMAL2-IM-0587-0001-0002.jpeg", "NORMAL2-IM-0587"),
        ("scan.jpeg", None),
    ],
)
def test_chest_xray_patient_from_file_name(name: str, patient: str | None) -> None:
    assert chest_patient(Path(name)) == patient


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("SOB_B_A-14-22549AB-400-001.png", "14-22549AB"),
        ("SOB_M_DC-14-11031-400-017.png", "14-11031"),
        ("SOB_B_TA-14-3411F-400-005.png", "14-3411F"),
        ("SOB_M_PC-15-190EF-400-013.png", "15-190EF"),
        ("photo.png", None),
    ],
)
def test_breakhis_patient_from_file_name(name: str, patient: str | None) -> None:
    assert breakhis_patient(Path(name)) == patient


def test_chest_xray(tmp_path: Path) -> None:
    root = make_chest_xray(tmp_path / "chest_xray", val=True)
    table = load_table(root)
    assert (table.layout, table.modality, table.reader) == ("chest_xray", "xray", None)
    assert table.classes == ["NORMAL", "PNEUMONIA"]
    assert table.counts() == {
        "train": {"NORMAL": 20, "PNEUMONIA": 20},
        "val": {"NORMAL": 1, "PNEUMONIA": 1},
        "test": {"NORMAL": 6, "PNEUMONIA": 6},
    }
    assert all(r.group for r in table.records)
    by_ref = {r.ref: r for r in table.records}
    assert by_ref["train/PNEUMONIA/person3_virus_11.jpeg"].group == "person3"
    assert by_ref["train/NORMAL/NORMAL2-IM-0002-0001.jpeg"].group == "NORMAL2-IM-0002"
    assert by_ref["test/NORMAL/IM-0501-0002.jpeg"].group == "IM-0501"
    assert by_ref["train/NORMAL/IM-0001-0001.jpeg"].label == 0
    assert all(table.path(r).is_file() for r in table.records)
    assert sorted(table.ignored) == [".DS_Store", "test/.DS_Store", "train/.DS_Store"]


def test_chest_xray_nested_kaggle_folder(tmp_path: Path) -> None:
    root = make_chest_xray(tmp_path / "download" / "chest_xray")
    (tmp_path / "download" / "__MACOSX").mkdir()
    table = load_table(tmp_path / "download")
    assert table.layout == "chest_xray"
    assert table.root == root


def test_breakhis_kaggle_layout(tmp_path: Path) -> None:
    root = make_breakhis_kaggle(tmp_path / "BreaKHis 400X", per_slide=1)
    table = load_table(root)
    assert (table.layout, table.modality) == ("breakhis400x", "histology")
    assert table.classes == ["benign", "malignant"]
    assert table.counts() == {"train": {"benign": 1, "malignant": 1}, "test": {"benign": 1, "malignant": 1}}
    patients = {r.ref: r.group for r in table.records}
    assert patients["train/benign/SOB_B_A-14-22549AB-400-001.png"] == "14-22549AB"
    assert patients["test/malignant/SOB_M_LC-15-190EF-400-001.png"] == "15-190EF"
    from PIL import Image

    with Image.open(table.path(table.records[0])) as image:
        assert (image.size, image.mode) == ((700, 460), "RGB")
    assert load_table(tmp_path).root == root  # the parent folder is accepted too


def test_breakhis_original_archive_uses_only_400x(tmp_path: Path) -> None:
    make_breakhis_archive(tmp_path / "archive")
    table = load_table(tmp_path / "archive")
    assert table.layout == "breakhis400x"
    assert table.root.name == "breast"
    assert table.counts() == {"all": {"benign": 4, "malignant": 4}}
    assert all("/400X/" in r.ref for r in table.records)
    assert {r.group for r in table.records} == {"14-22549AB", "14-9133", "14-11031", "15-190EF"}
    assert sum(name.endswith("Thumbs.db") for name in table.ignored) == 4
    assert not any("/40X/" in name for name in table.ignored)


@pytest.mark.parametrize("give_parent", [True, False])
def test_kather(tmp_path: Path, give_parent: bool) -> None:
    parent = make_kather(tmp_path / "kather")
    folder = parent / "Kather_texture_2016_image_tiles_5000"
    table = load_table(parent if give_parent else folder)
    assert (table.layout, table.modality, table.root) == ("kather2016", "histology", folder)
    assert table.classes == list(KATHER_CLASSES)
    assert table.counts() == {"all": dict.fromkeys(KATHER_CLASSES, 2)}
    assert all(r.split is None for r in table.records) and table.group_kind == "slide"
    by_class = {
        name: sorted({r.group for r in table.records if table.classes[r.label] == name})
        for name in KATHER_CLASSES
    }
    assert by_class["01_TUMOR"] == ["CRC-Prim-HE-01", "CRC-Prim-HE-02"]
    assert by_class["08_EMPTY"] == ["CRC-Prim-HE-06"]
    assert table.records[0].ref.endswith(".tif")


def test_folder_with_and_without_splits(tmp_path: Path) -> None:
    flat = load_table(make_folder(tmp_path / "flat", {"cats": 3, "dogs": 2}))
    assert (flat.layout, flat.modality, flat.classes) == ("folder", "generic", ["cats", "dogs"])
    assert flat.counts() == {"all": {"cats": 3, "dogs": 2}}
    split = load_table(make_folder(tmp_path / "split", {"x": 2, "y": 1}, splits=("train", "val", "test")))
    assert split.counts() == {s: {"x": 2, "y": 1} for s in ("train", "val", "test")}
    nested = tmp_path / "flat" / "dogs" / "more" / "deep.png"
    write_image(nested, 5)
    assert "dogs/more/deep.png" in [r.ref for r in load_table(tmp_path / "flat").records]


def test_medmnist_npz_gray_named_from_info(tmp_path: Path) -> None:
    arrays = make_npz(tmp_path / "pneumoniamnist.npz", n=(20, 6, 8))
    table = load_table(tmp_path / "pneumoniamnist.npz")
    assert (table.layout, table.modality) == ("medmnist", "xray")
    assert table.classes == ["normal", "pneumonia"]
    assert table.counts() == {"train": {"normal": 10, "pneumonia": 10}, "val": {"normal": 3, "pneumonia": 3},
                              "test": {"normal": 4, "pneumonia": 4}}  # fmt: skip
    assert table.reader is not None and table.identity
    test_first = next(r for r in table.records if r.split == "test")
    np.testing.assert_array_equal(table.reader(test_first), arrays["test_images"][0])
    assert table.reader(table.records[0]).shape == (28, 28)


def test_medmnist_npz_rgb_unknown_name(tmp_path: Path) -> None:
    arrays = make_npz(tmp_path / "my_cells.npz", n=(9, 3, 3), size=64, rgb=True, classes=3)
    table = load_table(tmp_path / "my_cells.npz")
    assert (table.classes, table.modality) == (["0", "1", "2"], "generic")
    image = table.reader(table.records[4])
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image, arrays["train_images"][4])
    assert table.records[4].label == 1


def test_medmnist_identity_follows_content(tmp_path: Path) -> None:
    path = tmp_path / "breastmnist.npz"
    make_npz(path)
    first = load_table(path).identity
    assert load_table(path).identity == first
    data = dict(np.load(path))
    data["train_images"][0, 0, 0] ^= 1
    np.savez(path, **data)
    assert load_table(path).identity != first


def test_medmnist_by_name_from_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "mm"))
    make_npz(tmp_path / "mm" / "breastmnist_64.npz", size=64)
    monkeypatch.chdir(tmp_path)
    assert detected_by("breastmnist@64") == ["medmnist"]
    table = load_table("breastmnist@64")
    assert table.root == tmp_path / "mm" / "breastmnist_64.npz"
    assert (table.classes, table.modality) == (["malignant", "normal, benign"], "generic")
    assert table.reader(table.records[0]).shape == (64, 64)


def test_medmnist_name_missing_offline_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medmnist.dataset

    def offline(self: object) -> None:
        raise RuntimeError("Automatic download failed! (offline test)")

    monkeypatch.setattr(medmnist.dataset.MedMNIST, "download", offline)
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "mm"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as error:
        load_table("pneumoniamnist@128")
    message = str(error.value)
    assert str(tmp_path / "mm" / "pneumoniamnist_128.npz") in message
    assert "https://zenodo.org/records/10519652/files/pneumoniamnist_128.npz" in message
    with pytest.raises(DataError, match="3D volumes"):
        load_table("organmnist3d", layout="medmnist")
    with pytest.raises(DataError, match="no such file or folder"):
        load_table("nosuchmnist")


def test_medmnist_multilabel_refused(tmp_path: Path) -> None:
    path = tmp_path / "chestmnist.npz"
    make_npz(path)
    data = dict(np.load(path))
    data["train_labels"] = np.zeros((20, 14), np.uint8)
    np.savez(path, **data)
    with pytest.raises(DataError, match=r"chestmnist\.npz.*multi-label"):
        load_table(path)


def test_csv_manifest(tmp_path: Path) -> None:
    for k in range(4):
        write_image(tmp_path / "imgs" / f"{k}.png", k)
    (tmp_path / "m.csv").write_text(
        "Path,label,patient,split\nimgs/0.png,sick,p1,train\nimgs/1.png,healthy,p1,Train\n"
        f"imgs/2.png,sick,,\n{tmp_path / 'imgs' / '3.png'},healthy,p2,test\n\n"
    )
    table = load_table(tmp_path / "m.csv")
    assert (table.layout, table.root, table.classes) == ("csv", tmp_path, ["healthy", "sick"])
    assert [(r.label, r.group, r.split) for r in table.records] == [
        (1, "p1", "train"), (0, "p1", "train"), (1, None, None), (0, "p2", "test")
    ]  # fmt: skip
    assert all(table.path(r).is_file() for r in table.records)


def test_csv_numeric_labels_sort_numerically(tmp_path: Path) -> None:
    rows = "".join(f"{k}.png,{label}\n" for k, label in enumerate((2, 10, 1)))
    for k in range(3):
        write_image(tmp_path / f"{k}.png", k)
    (tmp_path / "m.csv").write_text("path;label\n".replace(";", ",") + rows)
    assert load_table(tmp_path / "m.csv").classes == ["1", "2", "10"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a.png,x\nb.png,y\n", r"m\.csv: line 1 must be a header"),
        ("path,label\na.png,x\nmissing.png,y\n", r"m\.csv, line 3: .*missing\.png does not exist"),
        ("path,label\na.png,x\nb.png,\n", r"m\.csv, line 3: empty label for b\.png"),
        ("path,label,split\na.png,x,train\nb.png,y,holdout\n", r"m\.csv, line 3: unknown split 'holdout'"),
        ("path,label\na.png,x\na.png,y\n", r"m\.csv, line 3: a\.png is listed twice \(also line 2\)"),
        ("path,label\n", r"m\.csv: the manifest lists no images"),
    ],
)
def test_csv_manifest_errors_name_the_row(tmp_path: Path, content: str, message: str) -> None:
    write_image(tmp_path / "a.png", 1)
    write_image(tmp_path / "b.png", 2)
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        load_table(tmp_path / "m.csv")


def test_detection_is_specific(tmp_path: Path) -> None:
    """Each fixture is claimed by its own adapter and (for folders) the catch-all only."""
    make_npz(tmp_path / "pathmnist.npz", classes=9)
    (tmp_path / "m.csv").write_text("path,label\n")
    cases = {
        make_chest_xray(tmp_path / "chest"): ["chest_xray", "folder"],
        make_breakhis_kaggle(tmp_path / "bk"): ["breakhis400x", "folder"],
        make_breakhis_archive(tmp_path / "arch"): ["breakhis400x", "folder"],
        make_kather(tmp_path / "kather"): ["kather2016", "folder"],
        make_folder(tmp_path / "plain", {"a": 1, "b": 1}, splits=("train", "test")): ["folder"],
        make_folder(tmp_path / "benign_malignant", {"benign": 1, "malignant": 1}, splits=("train", "test")): [
            "folder"
        ],
        tmp_path / "pathmnist.npz": ["medmnist"],
        tmp_path / "m.csv": ["csv"],
        tmp_path / "nothing_here": [],
    }
    for path, expected in cases.items():
        assert detected_by(path) == expected, path
    assert list(SOURCES)[-1] == "folder"
    assert load_table(tmp_path / "pathmnist.npz").modality == "histology"


def test_forced_layout_on_wrong_folder(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "plain", {"a": 1, "b": 1})
    for layout in ("chest_xray", "breakhis400x", "kather2016"):
        with pytest.raises(DataError, match=r"plain: not the .*layout|plain: not a BreaKHis layout"):
            load_table(root, layout=layout)
    table = load_table(make_chest_xray(tmp_path / "chest"), layout="folder")
    assert (table.layout, table.groups[0]) == ("folder", None)
    assert os.fspath(table.root).endswith("chest")
