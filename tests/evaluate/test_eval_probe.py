"""Linear probe: C chosen on validation, class weighting, and the collapse flag on real probe outputs."""

from __future__ import annotations

import numpy as np

from medssl.evaluate.metrics import classification_metrics, is_collapsed
from medssl.evaluate.probe import linear_probe


def _data(n: int, informative: bool, minority_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < minority_share).astype(np.int64)
    features = rng.normal(0, 1, (n, 20))
    if informative:
        features[:, :3] += 2.0 * labels[:, None]
    return features, labels


def test_probe_on_informative_features_is_accurate_and_not_collapsed() -> None:
    train, val, test = (_data(n, True, 0.3, seed) for n, seed in ((300, 0), (100, 1), (200, 2)))
    result = linear_probe(*train, *val, test[0], n_classes=2)
    assert result.C in result.val_scores and result.val_scores[result.C] == max(result.val_scores.values())
    assert result.test_prob.shape == (200, 2)
    np.testing.assert_allclose(result.test_prob.sum(1), 1.0)
    assert classification_metrics(test[1], result.test_prob)["accuracy"] > 0.85
    assert not is_collapsed(test[1], result.test_prob.argmax(1))


def test_majority_probe_is_flagged_as_collapsed_on_a_balanced_test_set() -> None:
    train, val = _data(300, False, 0.2, 0), _data(100, False, 0.2, 1)
    test_x, _ = _data(200, False, 0.5, 2)
    test_y = np.r_[np.zeros(100, np.int64), np.ones(100, np.int64)]
    # Uninformative features and strong regularisation: the probe predicts the training majority.
    result = linear_probe(*train, *val, test_x, n_classes=2, c_grid=(1e-6,))
    assert (result.test_prob.argmax(1) == 0).all()
    assert is_collapsed(test_y, result.test_prob.argmax(1))
    # The same behaviour on a 96/4 test set is flagged too: its 96% accuracy is the majority-class floor.
    imbalanced = np.r_[np.zeros(192, np.int64), np.ones(8, np.int64)]
    assert is_collapsed(imbalanced, result.test_prob.argmax(1))


def test_balanced_class_weight_raises_minority_recall() -> None:
    train, val, test = (_data(n, True, 0.1, seed) for n, seed in ((400, 3), (200, 4), (400, 5)))
    plain = linear_probe(*train, *val, test[0], 2, c_grid=(1e-3,))
    balanced = linear_probe(*train, *val, test[0], 2, c_grid=(1e-3,), class_weight="balanced")
    minority = test[1] == 1
    recall = [np.mean(r.test_prob.argmax(1)[minority] == 1) for r in (plain, balanced)]
    assert recall[1] > recall[0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_the_probe_as_a_linear_map_of_raw_features_gives_its_probabilities() -> None:
    """LP-FT starts its head from (weight, bias): on raw features they must reproduce the probe exactly, for a
    binary probe, a multiclass one and one whose training labels lack a class."""
    rng = np.random.default_rng(0)
    for n_classes, present in ((2, 2), (4, 4), (4, 3)):
        labels = rng.integers(0, present, 200)
        features = rng.normal(5, 3, (200, 8)) * rng.uniform(0.1, 10, 8)  # far from standardised
        features[:, 0] += 4 * labels
        result = linear_probe(features, labels, features[:50], labels[:50], features, n_classes)
        assert result.weight.shape == (n_classes, 8) and result.bias.shape == (n_classes,)
        np.testing.assert_allclose(
            _softmax(features @ result.weight.T + result.bias), result.test_prob, atol=1e-9
        )
    only_probe = linear_probe(features, labels, features[:50], labels[:50], None, 4)
    assert only_probe.test_prob.shape == (0, 4) and only_probe.C == result.C
