"""Feature extraction (eval mode, uint8 → [0, 1]) and the features.npz cache keyed by weights and data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medssl.evaluate.features as features_module
from medssl.evaluate.features import Features, encoder_features, extract_features
from medssl.models.encoder import build_encoder

HELPERS_KEYS = {
    "train", "val", "test", "train_labels", "val_labels", "test_labels", "train_index", "val_index", "test_index",
}  # fmt: skip


def test_extract_features_equals_a_plain_forward_pass() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18").train()
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    features = extract_features(encoder, images, batch_size=4)
    assert features.dtype == np.float32 and features.shape == (10, 512)
    assert encoder.training  # mode restored
    with torch.no_grad():
        expected = encoder.eval()(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_grayscale_images_give_the_features_of_their_gray_rgb_copies() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18")
    gray = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    features = extract_features(encoder, gray)
    rgb = extract_features(encoder, gray.repeat(3, axis=3))
    # Same arithmetic up to summation order (an expanded vs a real 3-channel input take other kernels): float32
    # rounding through 18 layers of sums of up to 4,608 terms stays ~1e-4 of the features' scale.
    np.testing.assert_allclose(features, rgb, rtol=0, atol=1e-4 * np.abs(rgb).max())
    assert not np.allclose(features[0], features[1])  # the pixels, not a constant, decide the features


def test_features_cached_and_recomputed_when_the_weights_change(tiny_data, tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18").eval()
    path = tmp_path / "features.npz"
    first = encoder_features(encoder, tiny_data, path)
    for part in ("train", "val", "test"):
        x, y, index = first.part(part)
        np.testing.assert_array_equal(index, tiny_data.split[part])
        np.testing.assert_array_equal(y, tiny_data.labels[index])
        assert x.shape == (len(index), 512)
    with np.load(path) as stored:
        assert set(stored.files) >= HELPERS_KEYS
    np.testing.assert_allclose(
        first.test, extract_features(encoder, tiny_data.images[tiny_data.split["test"]])
    )

    def fail(*args, **kwargs):
        raise AssertionError("features were recomputed although the cache matches")

    monkeypatch.setattr(features_module, "extract_features", fail)
    cached = encoder_features(encoder, tiny_data, path)
    np.testing.assert_array_equal(cached.train, first.train)
    monkeypatch.undo()

    with torch.no_grad():
        encoder.backbone.conv1.weight.mul_(-1)
    changed = encoder_features(encoder, tiny_data, path)
    assert changed.key != first.key
    assert not np.allclose(changed.train, first.train)
    assert Features.load(path).key == changed.key


def test_corrupt_cache_is_recomputed(tiny_data, tmp_path) -> None:
    path = tmp_path / "features.npz"
    path.write_bytes(b"not an npz")
    features = encoder_features(build_encoder("resnet18"), tiny_data, path)
    assert features.test.shape == (len(tiny_data.split["test"]), 512)
    assert Features.load(path).key == features.key
    with pytest.raises(AttributeError):
        features.part("nope")
