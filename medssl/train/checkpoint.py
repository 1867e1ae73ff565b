"""Checkpoints written atomically (temporary file, fsync, rename) and read without unpickling objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from medssl.errors import TrainingError
from medssl.rundir.atomic import atomic_write, torch_save, write_advice


class AtomicCheckpointIO(TorchCheckpointIO):
    """A failed write (full disk, kill) leaves the previous checkpoint of the same name intact."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        atomic_write(
            path,
            lambda tmp: torch_save(checkpoint, tmp),
            on_error=lambda error: TrainingError(
                f"{path}: could not write the checkpoint ({error}); the previous one is intact — "
                f"{write_advice(error)}"
            ),
        )

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict:
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as error:
            raise TrainingError(
                f"{path}: refused to load this checkpoint ({error.__class__.__name__}: it is corrupt or carries "
                "pickled objects); delete it or train without --resume"
            ) from None
