"""Per-epoch health of the embedding: spread, effective rank, and a collapse check."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from medssl.errors import TrainingError
from medssl.rundir.atomic import atomic_write

HISTORY_COLUMNS = [
    "epoch",
    "loss",
    "knn_accuracy",
    "knn_balanced_accuracy",
    "embedding_std",
    "effective_rank",
    "images_per_s",
    "lr",
    "wall_s",
]
COLLAPSE_STD = 0.05
COLLAPSE_RANK = 2.0


def embedding_std(features: np.ndarray) -> float:
    """Std of L2-normalised features per dimension, times sqrt(dim): ~1 when spread out, 0 when collapsed."""
    x = torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float64), dim=1)
    return float(x.std(dim=0).mean() * math.sqrt(x.shape[1]))


def effective_rank(features: np.ndarray) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values; 1 ≤ rank ≤ min(N, D)."""
    s = torch.linalg.svdvals(torch.as_tensor(features, dtype=torch.float64))
    p = s / s.sum().clamp_min(1e-12) + 1e-12
    return float(torch.exp(-(p * p.log()).sum()))


def collapse_warning(epoch: int, std: float, rank: float) -> str | None:
    """A message when the embedding has collapsed (std or effective rank near zero), else None."""
    if std < COLLAPSE_STD or rank < COLLAPSE_RANK:
        return (
            f"embedding collapse at epoch {epoch}: std {std:.3f}, effective rank {rank:.2f}; "
            "try a lower learning rate, another method, or stronger augmentation"
        )
    return None


def write_history(path: Path, rows: list[dict]) -> None:
    """Rewrite ``history.csv`` atomically with ``rows``."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(
        path,
        write,
        on_error=lambda error: TrainingError(
            f"{path}: could not write the training history ({error}); the last checkpoint is intact — free "
            "disk space and rerun the same command with --resume"
        ),
    )


def read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
