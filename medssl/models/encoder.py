"""``Encoder``: a backbone bundled with its input conventions, saved and loaded as a pair of files
(``encoder.pt``, and ``encoder.json`` whose format ``medssl.rundir.encoder_meta`` owns)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medssl.errors import ConfigError, MedsslError
from medssl.models.backbones import Init, backbone_spec, build_backbone
from medssl.models.inputs import InputConventions
from medssl.rundir.atomic import atomic_write, torch_save, write_advice
from medssl.rundir.encoder_meta import ENCODER_META, ENCODER_WEIGHTS, read_encoder_meta, write_encoder_meta


class Encoder(nn.Module):
    """Maps images in [0, 1], shape (B, C, H, W) with C = 1 or 3, to (B, feature_dim) features.

    Grayscale input is repeated to the backbone's channels and every input is normalised the way the backbone
    expects, so callers only ever pass ``uint8_batch.float() / 255``. ``inputs`` and ``feature_dim`` default
    to the registered backbone ``name``'s.
    """

    def __init__(
        self,
        backbone: nn.Module,
        name: str,
        meta: dict[str, Any] | None = None,
        inputs: InputConventions | None = None,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        spec = backbone_spec(name) if inputs is None or feature_dim is None else None
        self.inputs = inputs or spec.inputs  # type: ignore[union-attr]
        self.backbone = backbone
        self.name = name
        self.feature_dim = feature_dim or spec.feature_dim  # type: ignore[union-attr]
        self.meta = {"backbone": name, **self.inputs.meta(), **(meta or {})}
        shape = (1, len(self.inputs.mean), 1, 1)
        self.register_buffer("mean", torch.tensor(self.inputs.mean).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(self.inputs.std).view(shape), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        if x.shape[1] == 1 and channels > 1:
            x = x.expand(-1, channels, -1, -1)
        elif x.shape[1] > 1 and channels == 1:
            x = x.mean(dim=1, keepdim=True)
        return (x - self.mean) / self.std

    def check_image_size(self, size: int) -> None:
        """A ConfigError naming the encoder and the sizes it takes when ``size`` px images cannot go in."""
        problem = self.inputs.size_problem(size)
        if problem:
            raise ConfigError(f"{self.meta.get('source') or self.name} {problem}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalise(x))


def build_encoder(name: str, init: Init = "random", **meta: Any) -> Encoder:
    return Encoder(build_backbone(name, init), name, {"init": init, **meta})


def _write_failed(path: Path) -> Callable[[OSError], MedsslError]:
    return lambda error: MedsslError(f"{path}: could not write it ({error}); {write_advice(error)}")


def save_encoder(encoder: Encoder, directory: str | Path, **meta: Any) -> Path:
    """Write ``encoder.pt`` (backbone state_dict only) and ``encoder.json`` (how to use it) atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = {**encoder.meta, **meta}
    weights = directory / ENCODER_WEIGHTS
    atomic_write(weights, lambda p: torch_save(encoder.backbone.state_dict(), p), _write_failed(weights))
    write_encoder_meta(directory, info, _write_failed(directory / ENCODER_META))
    return directory


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``: a file carrying pickled objects is refused clearly."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MedsslError(f"{path}: file not found") from None
    except Exception as error:
        raise MedsslError(
            f"{path}: refused to load; it is not a plain weights file ({error.__class__.__name__}). "
            "Only load checkpoints you trust, saved by medssl"
        ) from None


def load_encoder(directory: str | Path) -> Encoder:
    """The ``Encoder`` saved in a pre-training run directory, in eval mode, ready for feature extraction."""
    directory = Path(directory)
    meta = read_encoder_meta(directory)
    try:
        backbone = build_backbone(meta["backbone"], "random")
    except ConfigError as error:
        raise MedsslError(
            f"{directory / ENCODER_META}: {error}; restore the file written by `medssl pretrain`"
        ) from None
    encoder = Encoder(backbone, meta["backbone"], meta)
    try:
        encoder.backbone.load_state_dict(safe_torch_load(directory / ENCODER_WEIGHTS))
    except RuntimeError as error:
        raise MedsslError(
            f"{directory / ENCODER_WEIGHTS}: does not fit the {meta['backbone']} named in {ENCODER_META} "
            f"({str(error).splitlines()[0]}); restore the pair written by `medssl pretrain`"
        ) from None
    return encoder.eval()


def encoder_from_spec(spec: str) -> Encoder:
    """``imagenet:<backbone>``, ``random:<backbone>``, ``timm:<name>[@<file>]``, ``hf:<directory>`` or a
    pre-training run directory (``medssl.models.specs`` lists the spec families)."""
    from medssl.models.specs import family_encoder

    kind, _, name = spec.partition(":")
    if kind in ("imagenet", "random") and name:
        torch.manual_seed(0)
        return build_encoder(name, kind, method=kind, source=spec).eval()  # type: ignore[arg-type]
    return family_encoder(spec) or load_encoder(spec)
