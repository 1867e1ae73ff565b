"""Fine-tuning (LP-FT): its step budget and schedule, the probe it starts from, batch norm, and that it learns
an easy task without touching the caller's encoder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from medssl.evaluate.features import extract_features
from medssl.evaluate.finetune import FineTuner, StepBudget, finetune, step_budget, warmup_cosine
from medssl.evaluate.metrics import classification_metrics
from medssl.evaluate.probe import linear_probe
from medssl.models.encoder import build_encoder


def _bright_or_dark(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 images are brighter than class 0 images; both have pixel noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    base = np.where(labels == 1, 170, 70)[:, None, None, None]
    images = np.clip(base + rng.normal(0, 25, (n, 16, 16, 1)), 0, 255).astype(np.uint8)
    return images, labels


@pytest.mark.parametrize(
    ("n_train", "batch", "epochs", "min_steps", "expected"),
    [
        (44, 44, 6, 200, StepBudget(204, 34)),  # the demo's 44 images: the floor, not 6 steps
        (430, 64, 6, 10, StepBudget(42, 7)),  # enough images: 6 epochs of 7 steps, validated each epoch
        (4283, 64, 30, 200, StepBudget(2010, 67)),
    ],
)
def test_the_budget_is_counted_in_steps_with_a_floor(n_train, batch, epochs, min_steps, expected) -> None:
    assert step_budget(n_train, batch, epochs, min_steps) == expected


def test_warmup_then_cosine_to_zero() -> None:
    budget = StepBudget(200, 20)
    factor = warmup_cosine(budget)
    rates = [factor(step) for step in range(budget.steps)]
    assert budget.warmup == 20 and rates[0] == pytest.approx(1 / 20) and rates[19] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[19:]))  # never rises after warm-up
    assert rates[-1] < 1e-3


@pytest.mark.parametrize("init", ["random", "pretrained"])
def test_finetune_learns_brightness_and_leaves_the_encoder_alone(init: str) -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18", "random", method="random" if init == "random" else "simclr")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    train, val, (test_x, test_y) = _bright_or_dark(64, 0), _bright_or_dark(32, 1), _bright_or_dark(64, 2)
    result = finetune(
        encoder,
        train,
        val,
        test_x,
        2,
        seed=0,
        epochs=3,
        min_steps=6,
        patience=2,
        batch_size=32,
        augment="xray",
    )
    assert result.test_prob.shape == (64, 2)
    np.testing.assert_allclose(result.test_prob.sum(1), 1.0, rtol=1e-6)
    assert classification_metrics(test_y, result.test_prob)["accuracy"] > 0.9
    assert result.steps == 6 and 0 <= result.best_step <= result.steps_run <= 6
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())


def test_without_a_step_the_finetuned_model_is_its_linear_probe() -> None:
    """LP-FT's start is medssl's linear probe on the frozen features: with zero learning rates every validation
    ties with step 0, which is kept, and its test probabilities are the probe's."""
    torch.manual_seed(0)
    encoder = build_encoder("resnet18", "random", method="simclr")  # counts as pre-trained
    train, val, (test_x, _) = _bright_or_dark(64, 0), _bright_or_dark(32, 1), _bright_or_dark(64, 2)
    features = [extract_features(encoder, x) for x in (train[0], val[0], test_x)]
    probe = linear_probe(features[0], train[1], features[1], val[1], features[2], 2)
    result = finetune(encoder, train, val, test_x, 2, epochs=2, min_steps=2, lr_backbone=0.0, lr_head=0.0)
    np.testing.assert_allclose(result.test_prob, probe.test_prob, atol=1e-4)
    assert result.best_step == 0 and result.probe_C == probe.C


@pytest.mark.parametrize("pretrained", [True, False])
def test_batch_norm_is_frozen_for_a_pretrained_encoder_and_trains_from_scratch(pretrained: bool) -> None:
    encoder = build_encoder("resnet18", "random", method="simclr" if pretrained else "random")
    images = _bright_or_dark(8, 0)[0]
    module = FineTuner(
        encoder,
        torch.nn.Linear(512, 2),
        StepBudget(2, 1),
        1e-3,
        1e-3,
        1,
        bn_images=None if pretrained else images,
    ).train()
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training != pretrained for m in norms)
    assert module.training and module.head.training and encoder.backbone.conv1.training
