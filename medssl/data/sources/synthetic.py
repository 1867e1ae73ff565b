"""A deterministic generated dataset of stained-tissue-like images whose nuclei differ by class.

Class ``c`` changes three things a pathologist would look at: how many nuclei there are (density), how
large they are and how elongated. Each synthetic "patient" shares one stain colour, so that the split must
group by patient for a fair test, as with real slides.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from medssl.data.types import ImageRecord, ImageTable

CLASS_NAMES = ("sparse_round", "dense_small", "large_round", "elongated", "dense_large", "sparse_elongated")
IMAGES_PER_PATIENT = 5


def _class_params(label: int) -> tuple[int, float, float]:
    """(number of nuclei, radius in pixels at 64 px, elongation) for a class."""
    density = (14, 34, 14, 18, 30, 10)[label % 6]
    radius = (3.2, 2.3, 4.6, 3.2, 4.0, 3.4)[label % 6]
    elongation = (1.0, 1.0, 1.0, 2.4, 1.1, 2.2)[label % 6]
    return density, radius, elongation


def render(index: int, label: int, size: int, seed: int) -> np.ndarray:
    """Render image ``index`` of class ``label`` as uint8 HxWx3; the same arguments give the same pixels."""
    patient = index // IMAGES_PER_PATIENT
    stain_rng = np.random.default_rng([seed, 1, patient])
    rng = np.random.default_rng([seed, 2, index])
    scale = size / 64.0
    density, radius, elongation = _class_params(label)
    count = max(1, int(rng.poisson(density)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    eosin = np.array([236, 170, 200], np.float32) + stain_rng.normal(0, 10, 3)
    hematoxylin = np.array([80, 50, 140], np.float32) + stain_rng.normal(0, 12, 3)
    texture = rng.normal(0, 1, (size // 4 + 1, size // 4 + 1)).repeat(4, 0).repeat(4, 1)[:size, :size]
    image = eosin[None, None, :] + 9.0 * texture[..., None]

    nuclei = np.zeros((size, size), np.float32)
    for _ in range(count):
        cy, cx = rng.uniform(0, size, 2)
        r = radius * scale * rng.uniform(0.8, 1.25)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = -dx * np.sin(angle) + dy * np.cos(angle)
        distance = (along / (r * elongation)) ** 2 + (across / (r / np.sqrt(elongation))) ** 2
        nuclei = np.maximum(nuclei, np.clip(1.5 - distance, 0.0, 1.0))
    image = image * (1 - nuclei[..., None]) + hematoxylin[None, None, :] * nuclei[..., None]
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _read(record: ImageRecord, size: int, seed: int) -> np.ndarray:
    return render(int(record.ref[1:]), record.label, size, seed)


def load_synthetic(n_images: int = 600, n_classes: int = 4, size: int = 64, seed: int = 0) -> ImageTable:
    """A table of ``n_images`` generated images in ``n_classes`` balanced classes (no official split)."""
    if not 2 <= n_classes <= len(CLASS_NAMES):
        raise ValueError(f"synthetic n_classes must be between 2 and {len(CLASS_NAMES)}")
    per_patient_class = np.arange(n_images) // IMAGES_PER_PATIENT % n_classes
    records = [
        ImageRecord(ref=f"#{i}", label=int(per_patient_class[i]), group=f"synth{i // IMAGES_PER_PATIENT:05d}")
        for i in range(n_images)
    ]
    return ImageTable(
        layout="synthetic",
        root=Path("synthetic"),
        classes=list(CLASS_NAMES[:n_classes]),
        records=records,
        reader=partial(_read, size=size, seed=seed),
        modality="histology",
        identity=f"synthetic-v1:n={n_images}:c={n_classes}:s={size}:seed={seed}",
        group_kind="patient",
    )
