"""Checkpoints written atomically (temporary file, fsync, rename) and read without unpickling objects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from medssl.errors import TrainingError


class AtomicCheckpointIO(TorchCheckpointIO):
    """A failed write (full disk, kill) leaves the previous checkpoint of the same name intact."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with tmp.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as error:
            raise TrainingError(
                f"{path}: could not write the checkpoint ({error}); the previous one is intact — free disk space "
                "and rerun the same command with --resume"
            ) from None
        finally:  # also on Ctrl+C mid-write: no partial temporary file is left behind
            tmp.unlink(missing_ok=True)

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
