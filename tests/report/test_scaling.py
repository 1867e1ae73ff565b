"""Pre-training-set scaling on constructed results with a known answer: points, bands, the crossover."""

from __future__ import annotations

import math

import numpy as np

from medssl.evaluate.metrics import paired_bootstrap
from medssl.report.scaling import best_at, crossover, scaling_points

POOLS = {0.1: 100, 0.5: 500, 1.0: 1000}
IMAGENET = "imagenet-efficientnet_lite0"


def row(encoder: str, accuracy: float, low: float, high: float, **extra) -> dict:
    method = extra.pop("method", encoder.split("-")[0])
    out = {
        "dataset": "ds", "encoder": encoder, "method": method,
        "backbone": "efficientnet_lite0" if method == "imagenet" else "resnet18",
        "init": "random" if method != "imagenet" else "imagenet", "protocol": "linear",
        "label_fraction": "1.0", "seed": "0", "n_test": "200", "accuracy": str(accuracy),
        "accuracy_ci_low": str(low), "accuracy_ci_high": str(high), "auroc": str(accuracy + 0.05),
        "auroc_ci_low": str(low + 0.05), "auroc_ci_high": str(high + 0.05), "collapsed": "False",
        "predictions": "",
    }  # fmt: skip
    out.update({k: str(v) for k, v in extra.items()})
    return out


def ssl(
    method: str, fraction: float, accuracy: float, half_width: float = 0.03, seed: int = 0, **extra
) -> dict:
    encoder = f"{method}-resnet18-random-p{fraction:g}" + (f"-s{seed}" if seed else "")
    return row(
        encoder, accuracy, accuracy - half_width, accuracy + half_width,
        pretrain_fraction=fraction, pretrain_images=POOLS[fraction], **extra,
    )  # fmt: skip


def imagenet(accuracy: float = 0.80, low: float = 0.77, high: float = 0.83, **extra) -> dict:
    return row(IMAGENET, accuracy, low, high, **extra)


def test_points_average_evaluation_seeds_then_pretraining_seeds() -> None:
    rows = [
        ssl("vicreg", 0.5, 0.80, seed=0),
        ssl("vicreg", 0.5, 0.84) | {"seed": "1"},  # second evaluation seed of run s0
        ssl("vicreg", 0.5, 0.90, seed=1),
        ssl("vicreg", 1.0, 0.91),
        imagenet(),
    ]
    points = scaling_points(rows, "ds", "linear")
    assert list(points) == ["vicreg-resnet18-random"]
    half, full = points["vicreg-resnet18-random"]
    assert (half.pool_images, full.pool_images) == (500, 1000)
    assert half.stat.n == 2 and math.isclose(half.stat.mean, (0.82 + 0.90) / 2)
    assert math.isclose(half.stat.sd, np.std([0.82, 0.90], ddof=1))
    assert math.isclose(half.stat.ci_low, (0.79 + 0.87) / 2)
    assert full.stat.n == 1 and math.isnan(full.stat.sd)


def test_crossover_reached_at_the_smallest_pool_whose_ci_is_above() -> None:
    rows = [
        ssl("simclr", 0.1, 0.70), ssl("simclr", 0.5, 0.82), ssl("simclr", 1.0, 0.86),
        ssl("vicreg", 0.1, 0.74), ssl("vicreg", 0.5, 0.88), ssl("vicreg", 1.0, 0.90),
        imagenet(),
    ]  # fmt: skip
    result = crossover(rows, "ds", "linear")
    assert result is not None and result.reached is not None
    assert (result.reached.pool_images, result.reached.info.method) == (500, "vicreg")
    assert result.sustained and result.reference.name == "ImageNet frozen (efficientnet_lite0)"
    assert [p.info.method for _, p in result.best] == ["vicreg", "vicreg", "vicreg"]
    text = result.sentence("Linear probe")
    assert "first beats ImageNet frozen (efficientnet_lite0) at 500 pre-training images (pool 0.5)" in text
    assert "VICReg (resnet18) 88.0% (95% CI 85.0–91.0) vs 80.0% (95% CI 77.0–83.0)" in text
    assert "no paired test" in text  # no predictions loader given


def test_crossover_not_reached_names_the_largest_pool() -> None:
    rows = [ssl("simclr", f, a) for f, a in ((0.1, 0.70), (0.5, 0.78), (1.0, 0.84))] + [imagenet()]
    result = crossover(rows, "ds", "linear")
    assert result is not None and result.reached is None and not result.sustained
    assert result.decisive.pool_images == 1000  # the paired test is at the largest pool
    assert (
        "does not beat ImageNet frozen (efficientnet_lite0) within 1,000 pre-training images"
        in result.sentence("Linear probe")
    )


def test_touching_cis_are_not_a_crossover_and_tied_methods_pick_the_table_order() -> None:
    # simclr's CI starts exactly where ImageNet's ends: not above.
    touching = {"accuracy_ci_low": "0.83"}
    rows = [
        ssl("simclr", 1.0, 0.86) | touching,
        ssl("vicreg", 1.0, 0.86) | touching,
        imagenet(0.80, 0.77, 0.83),
    ]
    result = crossover(rows, "ds", "linear")
    assert result is not None and result.reached is None
    assert best_at(scaling_points(rows, "ds", "linear"), 1.0).info.method == "simclr"
    rows[0] = ssl("simclr", 1.0, 0.86) | {"accuracy_ci_low": "0.8301"}  # a hair above: now reached
    assert crossover(rows, "ds", "linear").reached.info.method == "simclr"


def test_not_sustained_and_collapsed_runs_never_count() -> None:
    rows = [
        ssl("vicreg", 0.1, 0.95, collapsed=True),  # collapsed: ignored although high
        ssl("vicreg", 0.5, 0.88),
        ssl("vicreg", 1.0, 0.84),
        imagenet(),
    ]
    result = crossover(rows, "ds", "linear")
    assert result.reached.pool_images == 500 and not result.sustained
    assert "Not sustained" in result.sentence("Linear probe")
    assert crossover([r for r in rows if "imagenet" not in r["encoder"]], "ds", "linear") is None


def _predictions(y: np.ndarray, correct: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    prob = rng.dirichlet(np.ones(2), len(y)) * 0.4
    predicted = np.where(correct, y, 1 - y)
    prob[np.arange(len(y)), predicted] += 1.0
    return {"y_true": y, "y_prob": prob / prob.sum(1, keepdims=True), "test_index": np.arange(len(y))}


def test_the_paired_test_behind_the_crossover_is_the_verdicts_bootstrap() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    files = {
        "ssl.npz": _predictions(y, rng.random(200) < 0.92, rng),
        "ssl_s1.npz": _predictions(y, rng.random(200) < 0.90, rng),
        "imagenet.npz": _predictions(y, rng.random(200) < 0.70, rng),
    }
    rows = [
        ssl("vicreg", 0.1, 0.70),
        ssl("vicreg", 0.5, 0.91, predictions="ssl.npz"),
        ssl("vicreg", 0.5, 0.89, seed=1, predictions="ssl_s1.npz"),
        imagenet(0.70, 0.64, 0.76, predictions="imagenet.npz"),
    ]
    result = crossover(rows, "ds", "linear", load=files.get, n_bootstrap=300)
    assert result.reached.pool_images == 500 and len(result.tests) == 2
    expected = paired_bootstrap(
        y, files["ssl.npz"]["y_prob"], files["imagenet.npz"]["y_prob"], "accuracy", 300, 0
    )
    first = result.tests[0]
    assert (first.difference, (first.ci_low, first.ci_high), first.p_value) == expected
    assert first.difference > 0.1 and first.p_value < 0.01
    assert "paired bootstrap on the 200 shared test images per pre-training seed (2 runs)" in result.sentence(
        "Linear"
    )
