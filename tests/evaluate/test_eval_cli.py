"""``medssl evaluate`` and ``medssl compare`` through the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medssl.cli import app, main
from medssl.data.sources.synthetic import CLASS_NAMES, render
from medssl.errors import ConfigError, DataError
from medssl.rundir.results import read_results


def write_image_folder(root: Path, per_class: int = 30) -> Path:
    """``root/<class>/<n>.png``: three classes of synthetic tissue images as real PNG files."""
    for label, name in enumerate(CLASS_NAMES[:3]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(render(label * per_class + i, label, 32, seed=0)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory):
    """Two encoders evaluated by the CLI into one directory (a folder of 90 PNG images at 32 px)."""
    out = tmp_path_factory.mktemp("eval")
    data = write_image_folder(tmp_path_factory.mktemp("tissue") / "tissue")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDSSL_CACHE", str(out / "cache"))
        outputs = []
        for encoder in ("random:resnet18", "imagenet:efficientnet_lite0"):
            args = ["evaluate", "--encoder", encoder, "--data", str(data), "--image-size", "32"]
            args += ["--protocol", "knn,linear", "--k", "10", "--bootstrap", "100", "--out", str(out)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
    return out, outputs


def test_evaluate_writes_results_and_prints_a_table(evaluated) -> None:
    out, outputs = evaluated
    assert (out / "split.csv").is_file() and (out / "metrics.json").is_file()
    rows = read_results(out / "results.csv")
    assert [(r.encoder, r.protocol) for r in rows] == [
        ("random-resnet18", "knn"),
        ("random-resnet18", "linear"),
        ("imagenet-efficientnet_lite0", "knn"),
        ("imagenet-efficientnet_lite0", "linear"),
    ]
    table = outputs[1].splitlines()
    linear = next(line for line in table if line.startswith("imagenet") and " linear " in line)
    row = next(r for r in rows if r.encoder == "imagenet-efficientnet_lite0" and r.protocol == "linear")
    assert f"{row.metric('accuracy'):.3f} ± 0.000" in linear
    assert "results appended to" in outputs[1]


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


def test_evaluate_rejects_bad_options(tmp_path) -> None:
    base = ["evaluate", "--encoder", "random:resnet18", "--data", "synthetic", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*base, "--protocol", "svm"])
    assert isinstance(result.exception, ConfigError) and "svm" in str(result.exception)
    result = CliRunner().invoke(app, [*base, "--label-fractions", "0.1,abc"])
    assert isinstance(result.exception, ConfigError) and "--label-fractions" in str(result.exception)
