"""What a backbone's input must look like: normalisation, channels and the image sides it can take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputConventions:
    """Input conventions of a backbone, as its weights were trained (the model's own pretrained config).

    ``patch``: an image side must be a multiple of it (a ViT's patch; 1 for CNNs). ``fixed_size``: the only
    side the model takes (fixed position embeddings), or None. ``trained_size``: the side its weights were
    trained at, for messages and ``encoder.json``.
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    patch: int = 1
    fixed_size: int | None = None
    trained_size: int | None = None

    def size_problem(self, size: int) -> str | None:
        """Why ``size`` px images cannot go through the model, with the sizes that can; None if they can."""
        trained = f" (its weights were trained at {self.trained_size} px)" if self.trained_size else ""
        if self.fixed_size is not None and size != self.fixed_size:
            return (
                f"takes only {self.fixed_size} px images (fixed position embeddings), not {size} px; "
                f"set image_size {self.fixed_size}"
            )
        if size % self.patch:
            lower = size // self.patch * self.patch
            sizes = " or ".join(str(s) for s in (lower, lower + self.patch) if s > 0)
            return (
                f"cannot take {size} px images: its patch is {self.patch} px and an image side must be a "
                f"multiple of it; set image_size {sizes}{trained}"
            )
        return None

    def meta(self) -> dict[str, Any]:
        """The conventions as ``encoder.json`` records them (the patch and sizes only where they apply)."""
        info: dict[str, Any] = {"mean": list(self.mean), "std": list(self.std)}
        if self.channels != 3:
            info["input_channels"] = self.channels
        if self.patch > 1:
            info["patch"] = self.patch
        if self.fixed_size is not None:
            info["fixed_size"] = self.fixed_size
        if self.trained_size is not None:
            info["trained_size"] = self.trained_size
        return info
