"""``features.npz``: an encoder's frozen features of a dataset's train, val and test parts, cached beside the
evaluation results (``<dataset>[/fold<k>]/eval/<encoder>/features.npz``).

Keys: ``<part>`` (n, feature_dim) float32, ``<part>_labels`` and ``<part>_index`` (the dataset index of each
image) for each part, and ``key``: what the features were computed from (encoder weights, pixels and split),
so a cache made for anything else is recomputed. Files written before ``key`` existed load with key ``""``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medssl.rundir.atomic import atomic_write
from medssl.rundir.split import PARTS

FEATURES = "features.npz"
KEYS = tuple(f"{part}{suffix}" for part in PARTS for suffix in ("", "_labels", "_index"))


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
        return {name: getattr(self, name) for name in KEYS}

    def save(self, path: Path) -> None:
        """Write atomically as an npz with the keys of the run-directory format plus ``key``."""
        atomic_write(path, lambda tmp: np.savez(tmp, key=np.array(self.key), **self.arrays()))

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name != "key"}
            key = str(data["key"]) if "key" in data.files else ""
        return cls(**arrays, key=key)


def read_features(path: Path) -> Features | None:
    """The features in ``path``, or None when it is missing, unreadable or incomplete."""
    if not path.is_file():
        return None
    try:
        return Features.load(path)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
