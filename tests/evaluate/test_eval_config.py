"""``EvaluationConfig``: its checks, its cells, and the study's ``evaluation:`` built on it."""

from __future__ import annotations

import pytest

from medssl.config import validate
from medssl.errors import ConfigError
from medssl.evaluate.config import PROTOCOLS, EvaluationConfig
from medssl.study.config import EvaluationSettings, StudyConfig


def test_cells_are_every_protocol_fraction_and_seed_in_order() -> None:
    config = EvaluationConfig(protocols=["linear", "knn", "linear"], label_fractions=[1.0, 0.1], seeds=2)
    assert config.protocols == ["linear", "knn"]  # a protocol given twice is evaluated once
    assert config.cells() == [
        ("linear", 1.0, 0), ("linear", 1.0, 1), ("linear", 0.1, 0), ("linear", 0.1, 1),
        ("knn", 1.0, 0), ("knn", 1.0, 1), ("knn", 0.1, 0), ("knn", 0.1, 1),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"protocols": ["knn", "svm"]}, f"protocol(s) svm: choose from {', '.join(PROTOCOLS)}"),
        ({"protocols": []}, "protocol(s) (none)"),
        ({"label_fractions": [0.0, 0.5]}, "label_fractions: Value error, label fractions must be in (0, 1]"),
        ({"n_bootstrap": 50}, "n_bootstrap: Input should be greater than or equal to 100"),
        ({"class_weight": "inverse"}, "class_weight: Input should be 'balanced'"),
        ({"k": True}, "k: Value error, expected a number, not true"),
    ],
)
def test_bad_values_are_named(values: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=r"^eval\.yaml: ") as error:
        validate(EvaluationConfig, values, source="eval.yaml")
    assert fragment in str(error.value)


def test_the_study_evaluation_is_an_evaluation_config_with_finetune_specs() -> None:
    settings = EvaluationSettings(label_fractions=[1.0, 0.1, 1.0], finetune=["ssl"], class_weight="balanced")
    assert isinstance(settings, EvaluationConfig) and settings.label_fractions == [0.1, 1.0]
    with pytest.raises(ConfigError, match=r"evaluation\.protocols: .*evaluation\.finetune"):
        validate(StudyConfig, {"datasets": {"d": {}}, "evaluation": {"protocols": ["knn", "finetune"]}})
    study = validate(StudyConfig, {"datasets": {"d": {}}, "evaluation": {"k": 20, "temperature": 0.05}})
    assert (study.evaluation.k, study.evaluation.temperature, study.evaluation.n_bootstrap) == (
        20,
        0.05,
        1000,
    )
