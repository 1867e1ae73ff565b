"""``medssl evaluate``: results and table, options, --config and --set, the encoder's image size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medssl.cli import app
from medssl.errors import ConfigError
from medssl.models.encoder import build_encoder, save_encoder
from medssl.rundir.results import read_results

from ..reliability.cli import assert_one_error_line, evaluate, run_main


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


def test_evaluate_rejects_bad_options(tmp_path) -> None:
    base = ["evaluate", "--encoder", "random:resnet18", "--data", "synthetic", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*base, "--protocol", "svm"])
    assert isinstance(result.exception, ConfigError) and "svm" in str(result.exception)
    result = CliRunner().invoke(app, [*base, "--label-fractions", "0.1,abc"])
    assert isinstance(result.exception, ConfigError) and "--label-fractions" in str(result.exception)


def test_evaluate_uses_the_encoders_size_and_warns_when_told_otherwise(
    tissue: Path, capsys, monkeypatch
) -> None:
    run = tissue.parent / "pre"
    save_encoder(build_encoder("resnet18"), run, method="simclr", image_size=48)
    args = evaluate(tissue.parent / "out", tissue)
    args[args.index("random:resnet18")] = str(run)
    size = args.index("--image-size")
    code, err = run_main(capsys, monkeypatch, *args[:size], *args[size + 2 :])
    assert code == 0, err
    assert {p.name.split("-")[1] for p in (tissue.parent / "cache").glob("*.npy")} == {"48px"}
    code, err = run_main(
        capsys, monkeypatch, *args[:size], "--image-size", "32", *args[size + 2 :], "--replace"
    )
    assert code == 0, err
    assert "pre-trained at 48 px; evaluating at --image-size 32 px" in err
    meta = json.loads((run / "encoder.json").read_text())
    assert meta["image_size"] == 48


def test_unknown_devices_are_one_line(tissue: Path, capsys, monkeypatch) -> None:
    code, err = run_main(capsys, monkeypatch, *evaluate(tissue.parent / "out", tissue, "--device", "tpu"))
    assert_one_error_line(code, err, "--device 'tpu'", "cpu")


def _evaluation_of(out: Path) -> dict:
    """The evaluation settings of the one row in ``out/results.csv``, from ``settings.json``."""
    from medssl.rundir.settings import read_registry

    (row,) = read_results(out / "results.csv")
    return read_registry(out)[row.settings_key]["evaluation"]


def test_evaluate_reads_a_config_then_set_then_options(
    tissue: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text("protocols: [knn]\nk: 3\nn_bootstrap: 150\n")
    base = ["evaluate", "--encoder", "random:resnet18", "--data", str(tissue), "--image-size", "32"]
    base += ["--device", "cpu", "--config", str(config)]
    runs = {
        "file": ([], {"k": 3, "n_bootstrap": 150}),
        "set": (["--set", "k=5", "--set", "n_bootstrap=200"], {"k": 5, "n_bootstrap": 200}),
        "option": (["--set", "k=5", "--k", "7"], {"k": 7, "n_bootstrap": 150}),
    }
    for name, (extra, expected) in runs.items():
        out = tmp_path / name
        code, err = run_main(capsys, monkeypatch, *base, *extra, "--out", str(out))
        assert code == 0, err
        assert _evaluation_of(out) == {"protocol": "knn", **expected}, name
        (row,) = json.loads((out / "metrics.json").read_text())["rows"]
        assert row["k"] == expected["k"], name  # the neighbours the kNN voted with


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        (["--set", "kk=3"], "--set: kk: unknown key"),
        (["--set", "n_bootstrap=10"], "--set: n_bootstrap: Input should be greater than or equal to 100"),
        (["--bootstrap", "10"], "--bootstrap 10: Input should be greater than or equal to 100"),
        (
            ["--set", "protocols=[knn, svm]"],
            "protocol(s) svm: choose from knn, knn_weighted, linear, finetune",
        ),
        (["--class-weight", "heavy"], "--class-weight 'heavy': Input should be 'balanced'"),
    ],
)
def test_bad_evaluation_settings_are_one_line_and_write_nothing(
    tmp_path: Path, capsys, monkeypatch, given: list[str], fragment: str
) -> None:
    out = tmp_path / "out"
    args = ["evaluate", "--encoder", "random:resnet18", "--data", "synthetic", "--out", str(out), *given]
    code, err = run_main(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, fragment)
    assert not out.exists()


def test_a_bad_key_in_the_config_file_is_named_with_the_file(tmp_path: Path, capsys, monkeypatch) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text("k: 3\nneighbours: 5\n")
    args = ["evaluate", "--encoder", "random:resnet18", "--data", "synthetic", "--config", str(config)]
    code, err = run_main(capsys, monkeypatch, *args, "--out", str(tmp_path / "out"))
    assert_one_error_line(code, err, f"{config}: neighbours: unknown key", "known keys: class_weight")


def test_evaluate_help_shows_the_config_defaults() -> None:
    from medssl.evaluate.config import EvaluationConfig

    from .test_cli_help import command_options

    helps = {option.name: option.help for command, option in command_options() if command == "evaluate"}
    defaults = EvaluationConfig()
    shown = {"seeds": defaults.seeds, "k": defaults.k, "finetune_epochs": defaults.finetune_epochs,
             "bootstrap": defaults.n_bootstrap, "protocol": ",".join(defaults.protocols)}  # fmt: skip
    for name, default in shown.items():
        assert f"(default: {default})" in helps[name], (name, helps[name])
