"""Evaluate encoders: kNN, weighted kNN and linear probe on cached features, and end-to-end fine-tuning.

Every cell (protocol × label fraction × seed) gives one row of ``results.csv`` and one predictions file:

    out_dir/results.csv, out_dir/metrics.json
    out_dir/<dataset>/eval/<encoder_id>/features.npz
    out_dir/<dataset>/eval/<encoder_id>/predictions/<protocol>-f<fraction>-s<seed>.npz

Under cross-validation (``data.fold`` set) the files of fold k are under ``out_dir/<dataset>/fold<k>/eval/``
and every row carries its ``fold``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medssl.common.knn import knn_not_applicable, knn_scores
from medssl.common.metric_names import METRICS
from medssl.data.dataset import PreparedData
from medssl.errors import ConfigError
from medssl.evaluate.config import DEFAULT_TEMPERATURE, FROZEN_PROTOCOLS, PROTOCOLS, EvaluationConfig
from medssl.evaluate.features import Features, encoder_features
from medssl.evaluate.fractions import check_fraction, label_subset
from medssl.evaluate.metrics import (
    bootstrap_ci,
    classification_metrics,
    confusion,
    is_collapsed,
    summarise_seeds,
)
from medssl.evaluate.probe import linear_probe
from medssl.models.encoder import Encoder, encoder_from_spec
from medssl.models.specs import path_safe
from medssl.rundir.atomic import write_text
from medssl.rundir.encoder_meta import write_encoder_meta
from medssl.rundir.features import FEATURES
from medssl.rundir.lock import locked
from medssl.rundir.predictions import load_predictions, predictions_name, save_predictions
from medssl.rundir.results import (
    NOT_APPLICABLE,
    POOL_COLUMNS,
    RESULTS,
    append_results,
    cell_id,
    repair_results,
    rewrite_results,
)
from medssl.rundir.retrieval import RETRIEVAL, retrieval_sample, save_retrieval
from medssl.rundir.settings import (
    cell_settings,
    changed_common,
    changed_settings,
    evaluation_settings,
    read_registry,
    record_settings,
    refuse_changed,
    settings_key,
)

__all__ = [
    "DEFAULT_TEMPERATURE",
    "PROTOCOLS",
    "EvaluationConfig",
    "append_results",
    "encoder_identity",
    "encoder_settings",
    "evaluate_cell",
    "evaluate_encoder",
    "evaluate_finetune",
    "load_predictions",
    "predictions_name",
    "score_predictions",
]

BASELINE_METHODS = ("imagenet", "random")


def encoder_identity(encoder: Encoder, protocol: str | None = None) -> dict[str, str]:
    """``encoder`` id, ``method``, ``backbone`` and ``init`` of a row, from ``encoder.meta``.

    Ids follow the run-directory convention: ``<method>-<backbone>-<init>`` for pre-trained encoders,
    ``imagenet-<bb>`` / ``random-<bb>`` for the baselines, ``timm-<name>`` / ``hf-<folder>`` for the
    ``timm:`` and ``hf:`` specs, whose method is their kind (``imagenet`` or ``foundation``), init their
    family and backbone their ``title`` (``DINOv2 ViT-S/14``). An untrained encoder that is fine-tuned is the
    supervised-from-scratch baseline: method ``supervised`` (the id stays ``random-<bb>``).
    """
    meta = encoder.meta
    backbone = str(meta.get("backbone", encoder.name))
    init = str(meta.get("init", "random"))
    method = str(meta.get("method", "unknown"))
    name = path_safe(backbone)
    default_id = f"{method}-{name}" if method in BASELINE_METHODS else f"{method}-{name}-{init}"
    encoder_id = str(meta.get("encoder_id") or default_id)
    backbone = str(meta.get("title") or backbone)  # timm: and hf: encoders: the model's name for readers
    if method == "random" and protocol == "finetune":
        method = "supervised"
    return {"encoder": encoder_id, "method": method, "backbone": backbone, "init": init}


def score_predictions(
    y_true: np.ndarray, y_prob: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Metrics, 95% bootstrap CIs of accuracy and AUROC, the collapse flag and the confusion matrix."""
    row: dict[str, Any] = classification_metrics(y_true, y_prob)
    row["accuracy_ci_low"], row["accuracy_ci_high"] = bootstrap_ci(
        y_true, y_prob, "accuracy", n_bootstrap, seed
    )
    row["auroc_ci_low"], row["auroc_ci_high"] = bootstrap_ci(y_true, y_prob, "auroc", n_bootstrap, seed)
    y_pred = y_prob.argmax(axis=1)
    row["collapsed"] = is_collapsed(y_true, y_pred)
    row["confusion"] = confusion(y_true, y_pred, y_prob.shape[1]).tolist()
    return row


def _subset_positions(index: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions in ``index`` of the label subset that ``label_subset`` picks from these dataset indices."""
    if fraction == 1.0:
        return np.arange(len(index))
    full = np.full(int(index.max()) + 1, -1, dtype=np.int64)
    full[index] = labels
    chosen = label_subset(full, index, fraction, seed)
    order = np.argsort(index)
    return order[np.searchsorted(index[order], chosen)]


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol '{protocol}' is unknown; choose from {', '.join(PROTOCOLS)}")


def evaluate_cell(
    features: Features,
    protocol: str,
    label_fraction: float,
    seed: int,
    n_classes: int,
    settings: EvaluationConfig | None = None,
    knn_metric: str = "cosine",
) -> tuple[dict[str, Any], np.ndarray | None]:
    """One frozen-feature cell: ``knn``, ``knn_weighted`` or ``linear`` at a label fraction and seed, with
    ``settings``' k, temperature, class weight and bootstrap (default: ``EvaluationConfig()``'s).

    The labelled training images are ``label_subset(…, label_fraction, seed)``; the validation labels that
    choose the probe's C are subsampled at the same fraction (a 1% experiment does not get 10× more labels
    for validation than for training). The test set is always complete.

    A plain kNN whose k is at least the number of labelled images cannot work (``knn_not_applicable``): the
    cell is not run; its row has no metrics and says why in ``not_applicable``, and there are no
    probabilities (None).

    Returns:
        (row with protocol, label_fraction, seed, n_train, n_val, n_test, metrics, CIs, collapsed,
        confusion, wall_s and protocol details; test class probabilities (n_test, n_classes), or None for a
        cell that is not applicable).
    """
    _check_protocol(protocol)
    if protocol not in FROZEN_PROTOCOLS:
        raise ConfigError(f"protocol '{protocol}' needs the encoder; use evaluate_finetune")
    check_fraction(label_fraction)
    settings = settings or EvaluationConfig()
    start = time.perf_counter()
    train_x, train_y, train_index = features.part("train")
    keep = _subset_positions(train_index, train_y, label_fraction, seed)
    train_x, train_y = train_x[keep], train_y[keep]
    test_x, test_y, _ = features.part("test")
    details: dict[str, Any] = {}
    n_val = 0
    if protocol == "linear":
        val_x, val_y, val_index = features.part("val")
        val_keep = _subset_positions(val_index, val_y, label_fraction, seed)
        n_val = len(val_keep)
        probe = linear_probe(
            train_x,
            train_y,
            val_x[val_keep],
            val_y[val_keep],
            test_x,
            n_classes,
            class_weight=settings.class_weight,
        )
        y_prob = probe.test_prob
        details = {"C": probe.C, "val_balanced_accuracy": probe.val_balanced_accuracy}
    elif protocol == "knn" and (reason := knn_not_applicable(settings.k, len(train_y))):
        y_prob, details = None, {"k": settings.k, NOT_APPLICABLE: reason, "collapsed": False}
    else:
        weighted = protocol == "knn_weighted"
        y_prob = knn_scores(
            train_x,
            train_y,
            test_x,
            n_classes,
            k=settings.k,
            weighted=weighted,
            temperature=settings.temperature,
            metric=knn_metric,
        ).astype(np.float64)
        details = {"k": min(settings.k, len(train_y))}
    scores = score_predictions(test_y, y_prob, settings.n_bootstrap, seed) if y_prob is not None else {}
    row = {
        "protocol": protocol,
        "label_fraction": float(label_fraction),
        "seed": int(seed),
        "n_train": len(train_y),
        "n_val": n_val,
        "n_test": len(test_y),
        **{name: math.nan for name in METRICS},
        **scores,
        **details,
    }
    row["wall_s"] = round(time.perf_counter() - start, 3)
    return row, y_prob


def evaluate_finetune(
    encoder: Encoder,
    data: PreparedData,
    label_fraction: float,
    seed: int,
    settings: EvaluationConfig | None = None,
    batch_size: int = 64,
    device: str = "cpu",
) -> tuple[dict[str, Any], np.ndarray]:
    """Fine-tune ``encoder`` + a linear head on the labelled subset (LP-FT, ``medssl.evaluate.finetune``);
    row and test probabilities.

    ``settings`` gives the step budget (``finetune_epochs``, ``finetune_min_steps``), patience, class weight and
    bootstrap (default: ``EvaluationConfig()``'s). Training and validation labels are subsampled exactly as in
    ``evaluate_cell``, so the head starts from the same probe as the ``linear`` cell; the training batches get
    the light version of the data's augmentation preset (``detect_preset``).
    """
    from medssl.common.augment import detect_preset
    from medssl.evaluate.finetune import finetune  # Lightning is imported only when fine-tuning

    check_fraction(label_fraction)
    settings = settings or EvaluationConfig()
    start = time.perf_counter()
    labels = data.labels
    train_index = label_subset(labels, data.split["train"], label_fraction, seed)
    val_index = label_subset(labels, data.split["val"], label_fraction, seed)
    test_index = np.asarray(data.split["test"])
    n_classes = len(data.classes)
    result = finetune(
        encoder,
        (data.images[train_index], labels[train_index]),
        (data.images[val_index], labels[val_index]),
        data.images[test_index],
        n_classes,
        seed=seed,
        epochs=settings.finetune_epochs,
        min_steps=settings.finetune_min_steps,
        patience=settings.patience,
        batch_size=batch_size,
        class_weight=settings.class_weight,
        augment=detect_preset(data.table.modality, data.channels),
        device=device,
    )
    row = {
        "protocol": "finetune",
        "label_fraction": float(label_fraction),
        "seed": int(seed),
        "n_train": len(train_index),
        "n_val": len(val_index),
        "n_test": len(test_index),
        **score_predictions(labels[test_index], result.test_prob, settings.n_bootstrap, seed),
        "steps": result.steps,
        "steps_run": result.steps_run,
        "best_step": result.best_step,
        "val_balanced_accuracy": result.val_balanced_accuracy,
        "probe_C": result.probe_C,
        "probe_val_balanced_accuracy": result.probe_val_balanced_accuracy,
    }
    row["wall_s"] = round(time.perf_counter() - start, 3)
    return row, result.test_prob


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def write_metrics_json(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Merge ``rows`` into ``path`` (same dataset/encoder/protocol/fraction/seed replaced) with a mean ± sd summary;
    under the lock of ``path``, so parallel cells never drop each other's rows."""
    with locked(path):
        _merge_metrics(path, rows)


def _merge_metrics(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    identity = ("dataset", "encoder", "method", "protocol", "label_fraction", "seed", "fold")
    merged: dict[tuple, dict[str, Any]] = {}
    if path.is_file():
        for row in json.loads(path.read_text()).get("rows", []):
            merged[tuple(row.get(key) for key in identity)] = row
    for row in rows:
        merged[tuple(row.get(key) for key in identity)] = {
            key: _jsonable(value) for key, value in row.items()
        }
    all_rows = list(merged.values())
    summary = summarise_seeds(
        [{k: (np.nan if v is None else v) for k, v in r.items()} for r in all_rows],
        by=("dataset", "encoder", "method", "protocol", "label_fraction"),
    )
    payload = {"rows": all_rows, "summary": [{k: _jsonable(v) for k, v in s.items()} for s in summary]}
    write_text(path, json.dumps(payload, indent=1, default=_jsonable))


ENCODER_META_KEYS = (
    "method",
    "backbone",
    "init",
    "seed",
    "epochs",
    "image_size",
    "data_fingerprint",
    "recipe",
)


def encoder_settings(encoder: Encoder) -> dict[str, Any]:
    """What made ``encoder``: its pre-training settings (``encoder.json``), its spec for a baseline, or for an
    encoder saved before settings were recorded the identifying fields of its metadata."""
    meta = encoder.meta
    if isinstance(meta.get("settings"), dict):
        return meta["settings"]
    if meta.get("source"):
        return {"spec": meta["source"]}
    return {key: meta.get(key) for key in ENCODER_META_KEYS}


@dataclass(frozen=True)
class PlannedCell:
    """A cell to evaluate, the settings it is made with and whether it replaces a finished row."""

    protocol: str
    fraction: float
    seed: int
    settings: dict[str, Any]
    replaces: bool


def _same_settings(key: str, settings: dict[str, Any], registry: dict[str, dict[str, Any]]) -> bool:
    """Whether a row with ``key`` was made with ``settings``: same key, a row from before keys existed, or
    recorded settings that differ only by keys a newer medssl added."""
    if key in ("", settings_key(settings)):
        return True
    recorded = registry.get(key)
    return recorded is not None and not changed_common(recorded, settings)


def plan_cells(
    cells: Iterable[tuple[str, float, int]],
    identity: tuple[str, str],
    settings_of: Callable[[str], dict[str, Any]],
    out_dir: Path,
    replace: bool,
    fold: int | None = None,
) -> list[PlannedCell]:
    """The cells still to evaluate: finished ones (same settings) are skipped, or redone with ``replace``.

    A finished cell made with other settings is refused, naming the changed keys, unless ``replace``. Rows
    written before settings keys existed count as finished. ``fold`` names the cross-validation fold
    (None for a single split): each fold's cells are separate.
    """
    done = {result.cell: result for result in repair_results(out_dir / RESULTS).results}
    registry = read_registry(out_dir)
    plan, stale = [], []
    for protocol, fraction, seed in cells:
        settings = settings_of(protocol)
        old = done.get((*identity, protocol, float(fraction), int(seed), fold))
        if old is not None and not replace:
            if _same_settings(old.settings_key, settings, registry):
                if old.settings_key not in registry and old.settings_key == settings_key(settings):
                    registry[record_settings(out_dir, settings)] = settings  # settings.json was lost
                continue
            stale.append((old, settings))
        plan.append(PlannedCell(protocol, fraction, seed, settings, old is not None))
    if stale:
        old, settings = stale[0]
        recorded = registry.get(old.settings_key)
        changes = changed_settings(recorded, settings) if recorded else [f"settings key {old.settings_key}"]
        more = f" (and {len(stale) - 1} more cells)" if len(stale) > 1 else ""
        cell = f"{old.dataset}/{old.encoder} {old.protocol} f={old.label_fraction:g} seed={old.seed}{more}"
        raise refuse_changed(
            f"{out_dir / RESULTS}: {cell}", changes, "Pass --replace to evaluate them again in place"
        )
    return plan


def _record(out_dir: Path, row: dict[str, Any], cell: PlannedCell) -> None:
    """Write ``row`` to results.csv with its settings key; a replaced cell's old row goes in the same step."""
    row["settings_key"] = record_settings(out_dir, cell.settings)
    path = out_dir / RESULTS
    if cell.replaces:
        rewrite_results(path, keep=lambda result: result.cell != cell_id(row), add=[row])
    else:
        append_results(path, [row])


def _write_retrieval(features: Features, data: PreparedData, path: Path) -> None:
    """The report's retrieval images for these features, while the pixels are at hand."""
    f = features
    sample = retrieval_sample(
        f.train, f.train_labels, f.train_index, f.test, f.test_labels, f.test_index, data.images
    )
    save_retrieval(path, sample)


def dataset_dir(out_dir: Path, data: PreparedData) -> Path:
    """``out_dir/<dataset>``, or ``out_dir/<dataset>/fold<k>`` for fold k of a cross-validation."""
    root = out_dir / data.name
    return root / f"fold{data.fold}" if data.fold else root


def evaluate_encoder(
    spec_or_encoder: str | Encoder,
    data: PreparedData,
    out_dir: str | Path,
    settings: EvaluationConfig | None = None,
    cells: Iterable[tuple[str, float, int]] | None = None,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
    data_settings: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate one encoder under every protocol × label fraction × seed; rows are also written to disk.

    Args:
        spec_or_encoder: an ``Encoder``, ``imagenet:<bb>``, ``random:<bb>`` or a pre-training run directory.
        data: the prepared dataset (its split decides train/val/test).
        out_dir: run directory receiving results.csv, metrics.json, settings.json, features and predictions.
        settings: protocols, label fractions, seeds and how each protocol is run (default:
            ``EvaluationConfig()``).
        cells: the (protocol, label fraction, seed) cells to evaluate (default: ``settings.cells()``, every
            combination); a study passes one cell at a time.
        progress: called with each finished row.
        data_settings: the keyed data settings (``medssl.rundir.settings.data_settings``); default: the
            data's fingerprint.
        replace: evaluate cells already in results.csv again and replace their rows (otherwise they are
            skipped, or refused when they were made with other settings).

    Returns:
        The rows evaluated now, in order; each is written to ``out_dir/results.csv`` as soon as it is done.
    """
    settings = settings or EvaluationConfig()
    wanted = list(settings.cells() if cells is None else cells)
    for protocol, fraction, _ in wanted:
        _check_protocol(protocol)
        check_fraction(fraction)
    encoder = encoder_from_spec(spec_or_encoder) if isinstance(spec_or_encoder, str) else spec_or_encoder
    out_dir = Path(out_dir)
    name = encoder_identity(encoder)["encoder"]
    values = settings.model_dump()
    data_keyed = dict(data_settings or {"fingerprint": data.fingerprint})
    plan = plan_cells(
        wanted,
        (data.name, name),
        lambda protocol: cell_settings(
            data_keyed, encoder_settings(encoder), evaluation_settings(protocol, values)
        ),
        out_dir,
        replace,
        data.fold,
    )
    eval_dir = dataset_dir(out_dir, data) / "eval" / name
    if plan and encoder.meta.get("source"):  # a baseline spec: what it is, its kind and input conventions
        write_encoder_meta(eval_dir, encoder.meta)
    features = None
    if any(cell.protocol in FROZEN_PROTOCOLS for cell in plan):
        features = encoder_features(encoder, data, eval_dir / FEATURES, device=device)
        _write_retrieval(features, data, eval_dir / RETRIEVAL)
    rows: list[dict[str, Any]] = []
    for cell in plan:
        protocol, fraction, seed = cell.protocol, cell.fraction, cell.seed
        if protocol == "finetune":
            row, y_prob = evaluate_finetune(encoder, data, fraction, seed, settings, device=device)
        else:
            assert features is not None
            row, y_prob = evaluate_cell(features, protocol, fraction, seed, len(data.classes), settings)
        test_index = np.asarray(data.split["test"])
        prediction_path = eval_dir / "predictions" / predictions_name(protocol, fraction, seed)
        if y_prob is not None:
            save_predictions(prediction_path, data.labels[test_index], y_prob, test_index)
        else:
            prediction_path.unlink(missing_ok=True)  # a replaced cell's old file would contradict its row
        row = {
            "dataset": data.name,
            **encoder_identity(encoder, protocol),
            **{key: encoder.meta[key] for key in POOL_COLUMNS if key in encoder.meta},
            **row,
            "fold": data.fold,
            "predictions": prediction_path.relative_to(out_dir).as_posix() if y_prob is not None else "",
        }
        _record(out_dir, row, cell)
        rows.append(row)
        if progress is not None:
            progress(row)
    if rows:
        write_metrics_json(out_dir / "metrics.json", rows)
    return rows
