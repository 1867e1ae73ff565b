"""``medssl compare``: prediction files and evaluation directories, refused inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medssl.cli import app, main
from medssl.errors import DataError

from ..reliability.cli import assert_one_error_line, run_main


def test_compare_two_prediction_files(evaluated) -> None:
    out, _ = evaluated
    a = out / "tissue/eval/imagenet-efficientnet_lite0/predictions/linear-f1-s0.npz"
    b = out / "tissue/eval/random-resnet18/predictions/linear-f1-s0.npz"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--resamples", "300"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("accuracy", "auroc"))]
    assert len(lines) == 2 and all("difference" in line and "p = " in line for line in lines)
    same = CliRunner().invoke(app, ["compare", str(a), str(a), "--resamples", "100", "--metric", "accuracy"])
    assert (
        same.exit_code == 0
        and "difference +0.000" in same.output
        and "no significant difference" in same.output
    )


def test_compare_evaluation_directories(evaluated) -> None:
    out, _ = evaluated
    a, b = out / "tissue/eval/imagenet-efficientnet_lite0", out / "tissue/eval/random-resnet18"
    args = [
        "compare",
        str(a),
        str(b),
        "--protocol",
        "knn",
        "--fraction",
        "1",
        "--seed",
        "0",
        "--resamples",
        "100",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "imagenet-efficientnet_lite0/knn-f1-s0" in result.output
    missing = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert isinstance(missing.exception, DataError) and "--protocol" in str(missing.exception)


def test_compare_refuses_different_test_images(evaluated, tmp_path, monkeypatch, capsys) -> None:
    out, _ = evaluated
    a = out / "tissue/eval/random-resnet18/predictions/knn-f1-s0.npz"
    with np.load(a) as data:
        arrays = dict(data)
    arrays["test_index"] = arrays["test_index"] + 1
    other = tmp_path / "other.npz"
    np.savez(other, **arrays)
    monkeypatch.setattr(sys, "argv", ["medssl", "compare", str(a), str(other)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "same test images" in error and "Traceback" not in error


def test_a_junk_npz_given_to_compare_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    other = tmp_path / "other.npz"
    np.savez(other, something=np.arange(3))
    for path in (junk, other):
        code, err = run_main(capsys, monkeypatch, "compare", str(path), str(path))
        assert_one_error_line(code, err, f"{path}: not a predictions file")
