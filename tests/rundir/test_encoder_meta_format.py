"""encoder.json: its exact text, a round trip, older files, damaged files and interrupted rewrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medssl.errors import MedsslError
from medssl.rundir.encoder_meta import ENCODER_META, read_encoder_meta, recorded_settings, write_encoder_meta

META = {"backbone": "resnet18", "mean": [0.485, 0.456, 0.406], "method": "simclr", "out": Path("/runs/a")}


def test_metadata_is_written_as_before_and_reads_back(tmp_path: Path) -> None:
    write_encoder_meta(tmp_path, {**META, "settings": {"method": "simclr", "lr": 0.1}})
    text = (tmp_path / ENCODER_META).read_text()
    assert text == json.dumps({**META, "settings": {"method": "simclr", "lr": 0.1}}, indent=2, default=str)
    assert text.startswith('{\n  "backbone": "resnet18",\n  "mean": [\n    0.485,')
    meta = read_encoder_meta(tmp_path)
    assert meta["out"] == "/runs/a" and meta["backbone"] == "resnet18"
    assert recorded_settings(tmp_path) == {"method": "simclr", "lr": 0.1}


def test_metadata_from_before_settings_were_recorded_still_reads(tmp_path: Path) -> None:
    (tmp_path / ENCODER_META).write_text('{"backbone": "resnet18", "method": "byol", "epochs": 5}')
    assert read_encoder_meta(tmp_path)["method"] == "byol"
    assert recorded_settings(tmp_path) is None
    (tmp_path / ENCODER_META).write_text('{"backbone": "resnet18", "settings": "lr=0.1"}')
    assert recorded_settings(tmp_path) is None  # not a record of keyed settings


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no encoder.json; pass a pre-training output directory"),
        ("{cut", "not a complete encoder description"),
        ('{"method": "simclr"}', "not a complete encoder description"),
        ('["resnet18"]', "not a complete encoder description"),
    ],
)
def test_missing_or_damaged_metadata_is_one_clear_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / ENCODER_META).write_text(content)
    with pytest.raises(MedsslError, match=message):
        read_encoder_meta(tmp_path)
    assert recorded_settings(tmp_path) is None


def test_an_interrupted_rewrite_leaves_the_old_metadata(tmp_path: Path, killed_before_rename) -> None:
    write_encoder_meta(tmp_path, META)
    before = (tmp_path / ENCODER_META).read_bytes()
    killed_before_rename()
    with pytest.raises(KeyboardInterrupt):
        write_encoder_meta(tmp_path, {**META, "backbone": "efficientnet_lite0"})
    assert (tmp_path / ENCODER_META).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [ENCODER_META]
