"""Files that carry code are refused without running it: pickled objects in encoder.pt and checkpoints, Python
tags in YAML configs. Every payload below is shown to be live (an unsafe loader runs it) before the refusal.

Text from the data in HTML: the only HTML output is the report (medssl/report/html.py, report.html); its
escaping of class and file names is tested in tests/report/test_report.py
(``test_text_from_the_data_is_escaped``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from medssl.errors import ConfigError, MedsslError
from medssl.models.encoder import ENCODER_WEIGHTS, build_encoder, load_encoder, save_encoder
from medssl.train.api import LAST

from .cli import assert_one_error_line, run_main, tiny_pretrain


class Trap:
    """Unpickling this object creates the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def armed(path: Path, payload: dict, marker: Path) -> Path:
    """Save ``payload`` with a trap into ``path``; check that a plain ``torch.load`` would spring it."""
    torch.save({**payload, "extra": Trap(marker)}, path)
    torch.load(path, weights_only=False)["extra"].close()
    assert marker.exists()
    marker.unlink()
    return path


def test_encoder_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    run = save_encoder(build_encoder("resnet18"), tmp_path / "run", method="simclr")
    marker = tmp_path / "touched"
    weights = torch.load(run / ENCODER_WEIGHTS, weights_only=True)
    armed(run / ENCODER_WEIGHTS, weights, marker)
    with pytest.raises(
        MedsslError, match=rf"{run / ENCODER_WEIGHTS}: refused to load; it is not a plain weights"
    ):
        load_encoder(run)
    assert not marker.exists()


def test_resume_from_a_checkpoint_with_a_pickled_object_is_refused(
    tmp_path: Path, pixel_cache: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "touched"
    armed(out / "checkpoints" / LAST, {"epoch": 0, "global_step": 7, "state_dict": {}}, marker)
    code, err = run_main(capsys, monkeypatch, *tiny_pretrain(out, pixel_cache, "--resume"))
    assert_one_error_line(
        code, err, f"{out / 'checkpoints' / LAST}: refused to load this checkpoint", "--resume"
    )
    assert not marker.exists() and not (out / "encoder.json").exists()


EVIL_YAML = '!!python/object/apply:os.system ["touch {marker}"]\n'


def test_yaml_python_tags_are_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    marker = tmp_path / "touched"
    config = tmp_path / "evil.yaml"
    config.write_text(f"epochs: 3\nseed: {EVIL_YAML.format(marker=marker)}")
    yaml.unsafe_load(config.read_text())
    assert marker.exists()  # the payload is live
    marker.unlink()
    code, err = run_main(
        capsys, monkeypatch, "pretrain", "--config", str(config), "--out", str(tmp_path / "r")
    )
    assert_one_error_line(code, err, f"{config}: YAML tags such as !!python/... are refused")
    study = tmp_path / "study.yaml"
    study.write_text(EVIL_YAML.format(marker=marker))
    code, err = run_main(capsys, monkeypatch, "benchmark", str(study), "--out", str(tmp_path / "b"))
    assert_one_error_line(code, err, f"{study}: YAML tags such as !!python/... are refused")
    with pytest.raises(ConfigError):
        from medssl.study import load_study

        load_study(study)
    assert not marker.exists()
