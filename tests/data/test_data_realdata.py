"""The real Kermany chest X-ray set in ../shared/data (skipped when absent): table and inspect, no decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
from datagen import REAL_CHEST_XRAY

from medssl.data.inspect import inspect_dataset
from medssl.data.sources import load_table

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not REAL_CHEST_XRAY.is_dir(), reason=f"{REAL_CHEST_XRAY} not present"),
]


def test_real_chest_xray_table() -> None:
    table = load_table(REAL_CHEST_XRAY)
    assert table.layout == "chest_xray" and table.classes == ["NORMAL", "PNEUMONIA"]
    counts = table.counts()
    assert sum(counts["train"].values()) == 5216 and sum(counts["test"].values()) == 624
    assert set(counts) == {"train", "test"}
    assert all(r.group for r in table.records), [r.ref for r in table.records if not r.group][:5]
    assert all(name.endswith(".DS_Store") for name in table.ignored)
    train = {r.group for r in table.records if r.split == "train"}
    test = {r.group for r in table.records if r.split == "test"}
    print(f"patients: train {len(train)}, test {len(test)}, in both {len(train & test)}")


def test_real_chest_xray_inspect(tmp_path: Path) -> None:
    report = inspect_dataset(REAL_CHEST_XRAY, image_size=32, grid_path=tmp_path / "grid.png")
    assert report.n_images == 5840 and report.checked == 5840
    assert not any("unreadable" in problem for problem in report.problems), report.problems
    assert (tmp_path / "grid.png").is_file()
    print(report.to_text())
