"""Fine-tuning learns an easy task, keeps the caller's encoder intact and returns probabilities."""

from __future__ import annotations

import numpy as np
import torch

from medssl.evaluate.finetune import finetune, random_flips
from medssl.evaluate.metrics import classification_metrics
from medssl.models.encoder import build_encoder


def _bright_or_dark(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 images are brighter than class 0 images; both have pixel noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    base = np.where(labels == 1, 170, 70)[:, None, None, None]
    images = np.clip(base + rng.normal(0, 25, (n, 16, 16, 1)), 0, 255).astype(np.uint8)
    return images, labels


def test_finetune_learns_brightness_and_leaves_the_encoder_alone() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18", "random", method="random")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    train, val, (test_x, test_y) = _bright_or_dark(64, 0), _bright_or_dark(32, 1), _bright_or_dark(64, 2)
    result = finetune(encoder, train, val, test_x, 2, seed=0, max_epochs=3, patience=2, batch_size=32)
    assert result.test_prob.shape == (64, 2)
    np.testing.assert_allclose(result.test_prob.sum(1), 1.0, rtol=1e-6)
    assert classification_metrics(test_y, result.test_prob)["accuracy"] > 0.9
    assert 0 <= result.best_epoch < result.epochs_run <= 3
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())


def test_random_flips_only_mirror_images() -> None:
    torch.manual_seed(0)
    x = torch.arange(3 * 4 * 5, dtype=torch.float32).reshape(1, 3, 4, 5).repeat(16, 1, 1, 1)
    flipped = random_flips(x, vertical=True)
    variants = [x[:1], x[:1].flip(3), x[:1].flip(2), x[:1].flip(2).flip(3)]
    matches = [[torch.equal(f[None], v) for v in variants] for f in flipped]
    assert all(sum(m) == 1 for m in matches)
    assert len({m.index(True) for m in matches}) > 1  # not all the same choice
