"""Frozen-encoder features of a prepared dataset, cached in ``features.npz`` next to the evaluation results
(the format: ``medssl.rundir.features``, whose ``Features`` is importable from here too)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medssl.common.images import unit_float
from medssl.data.dataset import PreparedData
from medssl.models.encoder import Encoder
from medssl.rundir.features import Features, read_features
from medssl.rundir.split import PARTS

FEATURES_VERSION = "features-v1"


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
    features = None if path is None else read_features(Path(path))
    return features if features is not None and features.key == key else None


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
