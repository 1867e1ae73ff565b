"""Build a small but real benchmark run directory (used by conftest.py, once per test session).

Features come from real encoders (random ResNet-18s, ImageNet EfficientNet-Lite0, nuclei statistics for a 'good'
SSL encoder and a darkness histogram for a frozen foundation model, and a collapsed constant encoder); kNN /
logistic-regression / MLP probes are fitted with scikit-learn and every metric in results.csv is computed from
their predictions. Only history.csv follows a fixed formula.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from medssl.data import DataConfig, prepare_data
from medssl.models import build_encoder
from medssl.rundir.features import FEATURES, Features
from medssl.rundir.history import HISTORY, history_row, write_history
from medssl.rundir.predictions import save_predictions
from medssl.rundir.results import RESULTS, append_results
from medssl.rundir.retrieval import RETRIEVAL, retrieval_sample, save_retrieval
from medssl.rundir.split import SPLIT, read_split_rows, write_split_rows

WEIRD_CLASS = '<b>&"x"'
DOLLAR_CLASS = "cost $5 <i>"
FOUNDATION = "hf-rad-dino"
"""A frozen foundation model's encoder id, as ``hf:microsoft/rad-dino`` writes it (a darkness histogram here)."""


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    n_images: int
    n_classes: int
    encoders: tuple[str, ...]
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    renamed: dict[int, str]
    preview: bool


PLANS = (
    DatasetPlan(
        "tissue",
        120,
        4,
        (
            "vicreg-resnet18-random",
            "simclr-resnet18-random",
            "simsiam-resnet18-random",
            "imagenet-efficientnet_lite0",
            "random-resnet18",
        ),
        (1.0, 0.5, 0.25),
        (0, 1),
        {1: WEIRD_CLASS},
        True,
    ),
    DatasetPlan(
        "tissue3",
        100,
        3,
        ("vicreg-resnet18-random", "imagenet-efficientnet_lite0", FOUNDATION, "random-resnet18"),
        (1.0, 0.5),
        (0,),
        {0: DOLLAR_CLASS},
        False,
    ),
)


def _features(encoder_id: str, images: np.ndarray) -> np.ndarray:
    """Real features of every image for the fixture's encoder ids."""
    if encoder_id.startswith("vicreg"):  # a 'good' encoder: nuclei statistics (darkness histogram, edges)
        dark = 1 - images.astype(np.float32).mean(-1) / 255
        hist = np.stack([np.histogram(d, bins=12, range=(0, 1))[0] for d in dark]) / dark[0].size
        mask = (dark > 0.5).astype(np.float32)
        edges = np.abs(np.diff(mask, axis=1)).sum((1, 2)) + np.abs(np.diff(mask, axis=2)).sum((1, 2))
        gradients = [np.abs(np.diff(dark, axis=a)).mean((1, 2)) for a in (1, 2)]
        return np.column_stack([hist, *gradients, mask.mean((1, 2)), edges / (mask.sum((1, 2)) + 1)])
    if encoder_id.startswith("simsiam"):  # a collapsed encoder: the same vector for every image
        return np.ones((len(images), 32), np.float32)
    if encoder_id == FOUNDATION:  # a weaker 'good' encoder: the darkness histogram alone
        dark = 1 - images.astype(np.float32).mean(-1) / 255
        return np.stack([np.histogram(d, bins=12, range=(0, 1))[0] for d in dark]) / dark[0].size
    if encoder_id.startswith("imagenet"):
        encoder = build_encoder("efficientnet_lite0", "imagenet")
    else:
        torch.manual_seed(1 if encoder_id.startswith("simclr") else 0)
        encoder = build_encoder("resnet18", "random")
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
        return encoder.eval()(x).numpy().astype(np.float32)


def _probe(protocol: str, seed: int, n_train: int):
    if protocol.startswith("knn"):
        weights = "distance" if protocol == "knn_weighted" else "uniform"
        return KNeighborsClassifier(n_neighbors=min(10, n_train), metric="cosine", weights=weights)
    if protocol == "linear":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    return make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=200, random_state=seed))


def _bootstrap_ci(y: np.ndarray, prob: np.ndarray, seed: int) -> tuple[float, float, float, float]:
    """Percentile bootstrap CIs: 400 resamples for accuracy (vectorised), 12 for AUROC (slow sklearn)."""
    rng = np.random.default_rng(seed)
    correct = prob.argmax(1) == y
    accs = correct[rng.integers(0, len(y), (400, len(y)))].mean(axis=1)
    aucs = []
    for _ in range(12):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) == prob.shape[1]:
            aucs.append(roc_auc_score(y[idx], prob[idx], multi_class="ovr"))
    return (*np.percentile(accs, [2.5, 97.5]), *np.percentile(aucs, [2.5, 97.5]))


def _evaluate(plan, root, encoder_id, features, labels, split, protocol, fraction, seed) -> dict:
    train, test = split["train"], split["test"]
    if fraction < 1.0:
        train, _ = train_test_split(train, train_size=fraction, stratify=labels[train], random_state=seed)
    model = _probe(protocol, seed, len(train)).fit(features[train], labels[train])
    prob = np.zeros((len(test), plan.n_classes))
    prob[:, model.classes_] = model.predict_proba(features[test])
    y, predicted = labels[test], prob.argmax(1)
    relative = f"{plan.name}/eval/{encoder_id}/predictions/{protocol}-f{fraction:g}-s{seed}.npz"
    save_predictions(root / relative, y, prob, test)
    acc_low, acc_high, auc_low, auc_high = _bootstrap_ci(y, prob, seed)
    method, _, rest = encoder_id.partition("-")
    backbone = rest.split("-")[0] if method not in ("imagenet", "random") else rest
    init = "imagenet" if method == "imagenet" else "random"
    if encoder_id == FOUNDATION:  # what an hf: spec writes: its kind, where its weights came from
        method, backbone, init = "foundation", "RAD-DINO", "hf"
    return {
        "dataset": plan.name,
        "encoder": encoder_id,
        "method": "supervised" if method == "random" and protocol == "finetune" else method,
        "backbone": backbone,
        "init": init,
        "protocol": protocol,
        "label_fraction": fraction,
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
        "accuracy": accuracy_score(y, predicted),
        "balanced_accuracy": balanced_accuracy_score(y, predicted),
        "f1_macro": f1_score(y, predicted, average="macro"),
        "precision_weighted": precision_score(y, predicted, average="weighted", zero_division=0),
        "recall_weighted": recall_score(y, predicted, average="weighted"),
        "f1_weighted": f1_score(y, predicted, average="weighted"),
        "auroc": roc_auc_score(y, prob, multi_class="ovr"),
        "accuracy_ci_low": acc_low,
        "accuracy_ci_high": acc_high,
        "auroc_ci_low": auc_low,
        "auroc_ci_high": auc_high,
        "collapsed": bool(features.std(axis=0).max() < 1e-6),
        "predictions": relative,
        "wall_s": 0.1,
    }


def _rename_classes(manifest: Path, renamed: dict[int, str]) -> None:
    """Give some classes awkward names, as a folder dataset could (the report reads names from split.csv)."""
    saved = read_split_rows(manifest)
    for row in saved.rows:
        row["class"] = renamed.get(int(row["label"]), row["class"])
    write_split_rows(manifest, saved.header, [list(row.values()) for row in saved.rows])


def _history(path: Path, encoder_id: str) -> None:
    """A fixture history.csv following a simple deterministic formula (not a result)."""
    collapsed = encoder_id.startswith("simsiam")
    rows = []
    for epoch in range(1, 9):
        decay = float(np.exp(-epoch / 3))
        knn = 0.25 if collapsed else 0.3 + 0.5 * (1 - decay)
        figures = {"loss": 2 + 3 * decay, "knn_accuracy": knn, "knn_balanced_accuracy": knn}
        figures |= {
            "embedding_std": 0.0 if collapsed else 0.2,
            "effective_rank": 1.0 if collapsed else 4 + 20 * (1 - decay),
        }
        rows.append(
            history_row({"epoch": epoch, **figures, "images_per_s": 500, "lr": 0.05, "wall_s": 1.5 * epoch})
        )
    write_history(path, rows)


RETRIEVAL_PARTS = ("train", "train_labels", "train_index", "test", "test_labels", "test_index")


def _preview(path: Path, images: np.ndarray) -> None:
    grid = np.concatenate([np.concatenate(list(images[r * 6 : r * 6 + 6]), axis=1) for r in range(2)], axis=0)
    buffer = io.BytesIO()
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())


def build_run(root: Path, cache: Path) -> Path:
    """Write a complete run directory at ``root`` (formats: docs/architecture.md)."""
    with threadpool_limits(limits=1):  # tiny matrices: BLAS threads only contend on a shared machine
        return _build_run(root, cache)


def _build_run(root: Path, cache: Path) -> Path:
    rows, configs = [], {}
    for plan in PLANS:
        config = DataConfig(
            path="synthetic",
            synthetic={"n_images": plan.n_images, "n_classes": plan.n_classes, "size": 32},
            image_size=32,
            cache_dir=str(cache),
        )
        configs[plan.name] = config.model_dump()
        data = prepare_data(config, run_dir=root / plan.name)
        _rename_classes(root / plan.name / SPLIT, plan.renamed)
        images, labels, split = np.asarray(data.images), data.labels, data.split
        for encoder_id in plan.encoders:
            features = _features(encoder_id, images)
            parts = {p: features[split[p]] for p in ("train", "val", "test")}
            parts |= {f"{p}_labels": labels[split[p]] for p in ("train", "val", "test")}
            parts |= {f"{p}_index": split[p] for p in ("train", "val", "test")}
            Features(**parts).save(root / plan.name / "eval" / encoder_id / FEATURES)
            sample = retrieval_sample(*(parts[k] for k in RETRIEVAL_PARTS), images)
            save_retrieval(root / plan.name / "eval" / encoder_id / RETRIEVAL, sample)
            protocols = ["knn", "knn_weighted", "linear"]
            if encoder_id.split("-")[0] in ("imagenet", "random"):
                protocols.append("finetune")
            for protocol in protocols:
                for fraction in plan.fractions:
                    for seed in plan.seeds:
                        rows.append(
                            _evaluate(
                                plan, root, encoder_id, features, labels, split, protocol, fraction, seed
                            )
                        )
            if encoder_id.split("-")[0] in ("vicreg", "simclr", "simsiam"):
                _history(root / plan.name / "pretrain" / encoder_id / HISTORY, encoder_id)
        if plan.preview:
            _preview(root / plan.name / "augment_preview.png", images[:12])
    append_results(root / RESULTS, rows)
    meta = {
        "command": f"medssl benchmark configs/report-fixture.yaml --out {root}",
        "machine": "fixture-host (2 CPU cores)",
        "started": "2025-01-01T12:00:00",
        "datasets": configs,
    }
    (root / "config.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return root
