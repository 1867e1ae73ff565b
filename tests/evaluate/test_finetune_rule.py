"""The fine-tuning rule: at every label fraction, an encoder fine-tuned on the labels scores at least the lower
bound of its own linear probe's 95 % CI (it starts from that probe). Checked on the demo's generated data at the
demo's settings (its fine-tuned encoders and label fractions) and at 1 % labels (8 images), for ImageNet
transfer, training from scratch and a self-supervised encoder.

Before LP-FT, a step budget, frozen batch-norm statistics and precise BN, the demo's ImageNet EfficientNet-Lite0
fine-tuned to 15 % at 10 % labels (its probe: 68 %) and training from scratch to 25-30 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medssl.data import DataConfig, PreparedData, prepare_data
from medssl.evaluate.api import evaluate_encoder
from medssl.evaluate.config import EvaluationConfig
from medssl.models.encoder import encoder_from_spec, load_encoder
from medssl.study.config import StudyConfig, load_study
from medssl.train import pretrain

from ..reliability.conftest import one_torch_thread  # noqa: F401 (autouse: one torch thread, as there)

LOW_LABELS = 0.01


@pytest.fixture(scope="module")
def demo() -> StudyConfig:
    return load_study(None)


@pytest.fixture(scope="module")
def demo_config(demo: StudyConfig, pixel_cache: Path) -> DataConfig:
    (config,) = demo.datasets.values()
    return config.model_copy(update={"cache_dir": str(pixel_cache)})


@pytest.fixture(scope="module")
def demo_data(demo_config: DataConfig) -> PreparedData:
    return prepare_data(demo_config)


def _settings(demo: StudyConfig, fractions: list[float]) -> EvaluationConfig:
    """The demo's evaluation settings, for the linear probe and fine-tuning at ``fractions``."""
    values = demo.evaluation.model_dump(exclude={"finetune"})
    return EvaluationConfig(**{**values, "protocols": ["linear", "finetune"], "label_fractions": fractions})


def _check_rule(rows: list[dict]) -> None:
    probes = {row["label_fraction"]: row for row in rows if row["protocol"] == "linear"}
    tuned = [row for row in rows if row["protocol"] == "finetune"]
    assert tuned and {row["label_fraction"] for row in tuned} == set(probes)
    for row in tuned:
        probe = probes[row["label_fraction"]]
        cell = f"{row['encoder']} at {row['label_fraction']:g} labels ({row['n_train']} images)"
        assert row["accuracy"] >= probe["accuracy_ci_low"], (
            f"{cell}: fine-tuned {row['accuracy']:.3f} < its probe's CI lower bound {probe['accuracy_ci_low']:.3f}"
        )
        assert not row["collapsed"], cell


def _demo_cells() -> list[tuple[str, float]]:
    demo = load_study(None)
    fractions = sorted({LOW_LABELS, *demo.evaluation.label_fractions})
    return [(spec, fraction) for spec in demo.evaluation.finetune for fraction in fractions]


@pytest.mark.parametrize(("spec", "fraction"), _demo_cells())
def test_the_demo_finetuning_scores_at_least_its_linear_probe_bound(
    demo: StudyConfig, demo_data: PreparedData, spec: str, fraction: float, tmp_path: Path
) -> None:
    """The demo's fine-tuned encoders (ImageNet EfficientNet-Lite0, ResNet-18 from scratch) at its label
    fractions and at 1 %."""
    settings = _settings(demo, [fraction])
    _check_rule(evaluate_encoder(encoder_from_spec(spec), demo_data, tmp_path, settings))


def test_a_self_supervised_encoder_finetunes_at_least_to_its_probe_bound_at_1_percent(
    demo: StudyConfig, demo_config: DataConfig, demo_data: PreparedData, tmp_path: Path
) -> None:
    """A SimCLR encoder pre-trained as in the demo, but for 2 epochs (the rule holds for any starting weights)."""
    update = {"method": "simclr", "epochs": 2, "knn_every": 2, "data": demo_config, "progress_bar": False}
    config = demo.pretrain.model_copy(update=update)
    encoder = load_encoder(pretrain(config, tmp_path / "simclr", data=demo_data))
    _check_rule(evaluate_encoder(encoder, demo_data, tmp_path / "eval", _settings(demo, [LOW_LABELS])))
