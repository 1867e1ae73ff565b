"""Frozen-encoder features of a prepared dataset, cached in ``features.npz`` next to the evaluation results."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medssl.common.images import unit_float
from medssl.data.dataset import PreparedData
from medssl.models.encoder import Encoder
from medssl.rundir.atomic import atomic_write

FEATURES_VERSION = "features-v1"
PARTS = ("train", "val", "test")


def extract_features(
    encoder: Encoder,
    images_uint8: np.ndarray,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, feature_dim) float32 features of (N, H, W, C) uint8 images (array or memmap), encoder in eval mode.

    The encoder's train/eval mode and device are restored afterwards.
    """
    was_training = encoder.training
    original_device = next(encoder.parameters()).device
    encoder.eval().to(device)
    out = np.empty((len(images_uint8), encoder.feature_dim), dtype=np.float32)
    try:
        with torch.inference_mode():
            for start in range(0, len(images_uint8), batch_size):
                batch = unit_float(images_uint8[start : start + batch_size], device=device)
                out[start : start + len(batch)] = encoder(batch).float().cpu().numpy()
                if progress is not None:
                    progress(min(start + batch_size, len(images_uint8)), len(images_uint8))
    finally:
        encoder.to(original_device).train(was_training)
    return out


@dataclass
class Features:
    """Features, labels and dataset indices of the train, val and test parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray
    val_labels: np.ndarray
    test_labels: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    key: str = ""
    """What the features were computed from (encoder weights, data and split); empty if unknown."""

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, labels, dataset indices) of ``train``, ``val`` or ``test``."""
        return getattr(self, name), getattr(self, f"{name}_labels"), getattr(self, f"{name}_index")

    def arrays(self) -> dict[str, np.ndarray]:
        names = [f"{p}{suffix}" for p in PARTS for suffix in ("", "_labels", "_index")]
        return {name: getattr(self, name) for name in names}

    def save(self, path: Path) -> None:
        """Write atomically as an npz with the keys of the run-directory format plus ``key``."""
        atomic_write(path, lambda tmp: np.savez(tmp, key=np.array(self.key), **self.arrays()))

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name != "key"}
            key = str(data["key"]) if "key" in data.files else ""
        return cls(**arrays, key=key)


def encoder_digest(encoder: Encoder) -> str:
    """A hash of the backbone name and every weight and buffer (batch-norm statistics included)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(encoder.name.encode())
    for name, tensor in encoder.backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def features_key(encoder: Encoder, data: PreparedData) -> str:
    """Cache key over the encoder weights, the pixels' fingerprint and the split."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(
        f"{FEATURES_VERSION}|{encoder_digest(encoder)}|{data.fingerprint}|{data.images.shape}".encode()
    )
    for part in PARTS:
        digest.update(part.encode())
        digest.update(np.asarray(data.split[part], dtype=np.int64).tobytes())
    return digest.hexdigest()


def _features_at(
    encoder: Encoder, images: np.ndarray, index: np.ndarray, batch_size: int, device: str | torch.device
) -> np.ndarray:
    """Features of ``images[index]``, reading the (memory-mapped) images in index order, a block at a time."""
    order = np.argsort(index, kind="stable")
    out = np.empty((len(index), encoder.feature_dim), dtype=np.float32)
    block = max(batch_size, 4096)
    for start in range(0, len(index), block):
        rows = order[start : start + block]
        out[rows] = extract_features(encoder, images[index[rows]], batch_size, device)
    return out


def _cached(path: Path | None, key: str) -> Features | None:
    if path is None or not path.is_file():
        return None
    try:
        features = Features.load(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None
    return features if features.key == key else None


def encoder_features(
    encoder: Encoder,
    data: PreparedData,
    cache_path: Path | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> Features:
    """Features of the train/val/test parts of ``data``; read from ``cache_path`` when its key matches.

    A cache written for other weights, other pixels or another split is recomputed and overwritten.
    """
    key = features_key(encoder, data)
    cached = _cached(cache_path, key)
    if cached is not None:
        return cached
    everything = np.concatenate([data.split[p] for p in PARTS])
    all_features = _features_at(encoder, data.images, everything, batch_size, device)
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for part in PARTS:
        index = np.asarray(data.split[part], dtype=np.int64)
        arrays[part] = all_features[offset : offset + len(index)]
        arrays[f"{part}_labels"] = data.labels[index]
        arrays[f"{part}_index"] = index
        offset += len(index)
    features = Features(**arrays, key=key)
    if cache_path is not None:
        features.save(Path(cache_path))
    return features
