"""Figures carry what they claim: t-SNE keeps clusters apart, retrieval borders mark wrong-class neighbours."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from sklearn.neighbors import KNeighborsClassifier

from medssl.common.knn import nearest_neighbours
from medssl.report.figures import (
    OPENTSNE_MIN_POINTS,
    Panel,
    class_colours,
    retrieval_figure,
    tsne_embed,
    tsne_figure,
)
from medssl.rundir.retrieval import query_positions


def _blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = rng.normal(0, 1, (3, 20)) * 4
    return centres[labels] + rng.normal(0, 1, (n, 20)), labels


def _two_d_knn_accuracy(xy: np.ndarray, labels: np.ndarray) -> float:
    model = KNeighborsClassifier(3).fit(xy[::2], labels[::2])
    return float(np.mean(model.predict(xy[1::2]) == labels[1::2]))


def test_tsne_keeps_separated_classes_apart_with_both_backends() -> None:
    for n in (30, OPENTSNE_MIN_POINTS + 20):  # scikit-learn for tiny n, openTSNE above
        features, labels = _blobs(n)
        xy = tsne_embed(features)
        assert xy.shape == (n, 2) and np.isfinite(xy).all()
        assert _two_d_knn_accuracy(xy, labels) > 0.9


def test_every_class_of_a_tsne_map_has_its_own_colour() -> None:
    """30 classes (or 30 slides in the map by group) are 30 colours in the picture, not a palette reused."""
    n = 30
    xy = np.random.default_rng(0).normal(size=(3 * n, 2))
    png = tsne_figure([Panel("encoder", xy, np.arange(3 * n) % n)], [f"class {i}" for i in range(n)])
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    drawn = {"#{:02x}{:02x}{:02x}".format(*pixel) for pixel in np.unique(rgb, axis=0)}
    colours = class_colours(n)
    assert len(set(colours)) == n and set(colours) <= drawn  # the legend's markers, drawn opaque
    assert len(set(class_colours(500))) == 500


def _red_pixels(png: bytes) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(np.sum((rgb[..., 0] > 200) & (rgb[..., 1] < 70) & (rgb[..., 2] < 70)))


def test_retrieval_marks_wrong_class_neighbours_in_red() -> None:
    rng = np.random.default_rng(0)
    queries = rng.integers(80, 160, (2, 16, 16, 1), dtype=np.uint8)  # grayscale: no red in the pictures
    neighbours = rng.integers(80, 160, (2, 5, 16, 16, 1), dtype=np.uint8)
    names = ["a<b>", "b&c", "c"]
    right = retrieval_figure(queries, np.array([0, 1]), neighbours, np.array([[0] * 5, [1] * 5]), names)
    wrong = retrieval_figure(
        queries, np.array([0, 1]), neighbours, np.array([[0] * 5, [1, 1, 2, 1, 1]]), names
    )
    assert _red_pixels(right) == 0
    assert _red_pixels(wrong) > 4 * 84  # at least a full border around one tile


def test_nearest_neighbours_use_cosine_similarity_and_queries_cover_classes() -> None:
    train = np.array([[1.0, 0.0], [0.0, 1.0], [10.0, 9.0], [-1.0, 0.0]])
    test = np.array([[5.0, 0.1], [0.1, 3.0]])
    np.testing.assert_array_equal(nearest_neighbours(train, test, 2), [[0, 2], [1, 2]])
    labels = np.array([2, 2, 0, 1, 0, 2])
    assert list(query_positions(labels, 4)) == [2, 3, 0, 4]
