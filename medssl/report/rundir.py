"""Read a benchmark run directory (every format through medssl.rundir): config, results, split, features,
histories, predictions, retrieval images."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from medssl.common.knn import knn_not_applicable
from medssl.errors import DataError
from medssl.rundir.features import FEATURES, read_features
from medssl.rundir.history import HISTORY, history_columns
from medssl.rundir.predictions import load_predictions
from medssl.rundir.results import RESULTS, Result, parse_int, read_results
from medssl.rundir.retrieval import RETRIEVAL, load_retrieval
from medssl.rundir.settings import read_registry
from medssl.rundir.split import SPLIT, read_split_rows

CONFIG = "config.yaml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class SplitSummary:
    """Counts per split and class from a dataset's split.csv manifest.

    Under cross-validation (``folds`` > 0) train and val count fold 1, and test counts every image once
    (the union of the folds' test sets)."""

    classes: list[str]
    counts: dict[str, list[int]]
    patients: int
    policy: str = ""
    """The split policy recorded in split.csv: grouped, random, or '' for manifests from before policies."""
    folds: int = 0
    group_kind: str = "patient"
    groups: list[str] = field(default_factory=list)
    """The group (patient, slide...) of each dataset index; '' where unknown."""
    straddling: list[str] = field(default_factory=list)
    """Groups with images both in the test set and in train/val (fold 1): a random split's leakage."""

    @property
    def majority_share(self) -> float:
        """The largest class's share of the test images (nan when there are none)."""
        test = self.counts.get("test") or []
        return max(test) / sum(test) if sum(test) else float("nan")


def _k(settings: dict[str, Any] | None, config: dict[str, Any]) -> int | None:
    """The kNN k a row was made with: its recorded evaluation settings, else the study's ``evaluation.k``."""
    for source in ((settings or {}).get("evaluation"), config.get("evaluation")):
        if isinstance(source, dict) and isinstance(source.get("k"), int):
            return source["k"]
    return None


def knn_applicability(
    results: list[Result], registry: dict[str, dict[str, Any]], config: dict[str, Any]
) -> list[Result]:
    """``results`` with the kNN rows that cannot work marked ``not_applicable``, also in run directories
    written before the column existed (their k comes from settings.json or the study's config)."""
    out = []
    for result in results:
        k = _k(registry.get(result.settings_key), config) if result.protocol == "knn" else None
        reason = knn_not_applicable(k, result.n_train) if k and result.n_train else ""
        out.append(replace(result, not_applicable=reason) if reason and not result.not_applicable else result)
    return out


@dataclass
class RunDir:
    """A benchmark output directory, read lazily and never written to (except by ``write_report``)."""

    root: Path
    config: dict[str, Any]
    results: list[Result]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """settings.json: what each results row's ``settings_key`` stands for."""
    _splits: dict[str, SplitSummary | None] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path) -> RunDir:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: no such run directory; pass the --out folder of `medssl benchmark`")
        results_path = root / RESULTS
        if not results_path.is_file():
            raise DataError(
                f"{results_path}: not found; pass a directory written by `medssl benchmark --out DIR`"
            )
        config: dict[str, Any] = {}
        if (root / CONFIG).is_file():
            try:
                loaded = yaml.safe_load((root / CONFIG).read_text())
            except yaml.YAMLError:
                raise DataError(
                    f"{root / CONFIG}: not valid YAML; restore the file written by the run"
                ) from None
            config = loaded if isinstance(loaded, dict) else {}
        registry = read_registry(root)
        return cls(root, config, knn_applicability(read_results(results_path), registry, config), registry)

    def test_counts(self, dataset: str) -> list[int]:
        """Test images per class: from split.csv (every image once under cross-validation), else from the
        labels of the dataset's first readable predictions file; empty when neither is there."""
        summary = self.split_summary(dataset)
        if summary is not None and sum(summary.counts.get("test") or []):
            return list(summary.counts["test"])
        for result in self.results:
            data = self.predictions(result.predictions) if result.dataset == dataset else None
            if data is not None and "y_true" in data and "y_prob" in data:
                return np.bincount(data["y_true"], minlength=data["y_prob"].shape[1]).tolist()
        return []

    def image_sizes(self, dataset: str) -> list[int]:
        """The image sizes the dataset's rows were made with (from settings.json; empty if unrecorded)."""
        sizes = set()
        for result in self.results:
            data = self.settings.get(result.settings_key, {}).get("data")
            if (
                result.dataset == dataset
                and isinstance(data, dict)
                and isinstance(data.get("image_size"), int)
            ):
                sizes.add(data["image_size"])
        return sorted(sizes)

    def datasets(self) -> list[str]:
        """Datasets with results, in config order first, then in results order."""
        configured = list((self.config.get("datasets") or {}).keys())
        seen = [name for name in configured if any(r.dataset == name for r in self.results)]
        for result in self.results:
            if result.dataset not in seen:
                seen.append(result.dataset)
        return seen

    def meta(self, key: str) -> str:
        value = self.config.get(key)
        return "" if value is None else str(value)

    def split_summary(self, dataset: str) -> SplitSummary | None:
        """Class names and counts from ``<dataset>/split.csv`` (None when the run has no manifest)."""
        if dataset not in self._splits:
            self._splits[dataset] = self._read_split(dataset)
        return self._splits[dataset]

    def _split_path(self, dataset: str) -> Path:
        """``<dataset>/split.csv`` (a study), or ``split.csv`` at the root where ``medssl evaluate --out`` wrote
        it for the run's only dataset."""
        path = self.root / dataset / SPLIT
        if not path.is_file() and {r.dataset for r in self.results} == {dataset}:
            return self.root / SPLIT
        return path

    def _read_split(self, dataset: str) -> SplitSummary | None:
        path = self._split_path(dataset)
        if not path.is_file():
            return None
        manifest = read_split_rows(path)
        rows, group_kind = manifest.rows, manifest.group_kind
        names: dict[int, str] = {}
        for row in rows:
            names.setdefault(parse_int(row.get("label")), row.get("class") or f"class {row.get('label')}")
        n_classes = max(names) + 1 if names else 0
        classes = [names.get(i, f"class {i}") for i in range(n_classes)]
        folds = len({row.get("fold") for row in rows if row.get("fold")})
        first = [row for row in rows if not folds or row.get("fold") == "1"]
        counts: dict[str, list[int]] = {}
        for row in first if folds else rows:
            if row.get("split") != "test" or not folds:
                per_class = counts.setdefault(row.get("split") or "all", [0] * n_classes)
                per_class[parse_int(row.get("label"))] += 1
        for row in rows if folds else []:
            if row.get("split") == "test":
                counts.setdefault("test", [0] * n_classes)[parse_int(row.get("label"))] += 1
        groups = [row.get(group_kind) or "" for row in first] if group_kind else []
        parts: dict[str, set[str]] = {}
        for row, group in zip(first, groups, strict=False):
            parts.setdefault("test" if row.get("split") == "test" else "rest", set()).add(group)
        straddling = sorted((parts.get("test", set()) & parts.get("rest", set())) - {""})
        policy = next((row.get("policy") or "" for row in rows), "")
        return SplitSummary(
            classes,
            counts,
            len(set(groups) - {""}),
            policy,
            folds,
            group_kind or "patient",
            groups,
            straddling,
        )

    def class_names(self, dataset: str, n_classes: int) -> list[str]:
        summary = self.split_summary(dataset)
        names = summary.classes if summary else []
        return [names[i] if i < len(names) else f"class {i}" for i in range(n_classes)]

    def dataset_dir(self, dataset: str, fold: int | None = None) -> Path:
        """``<run>/<dataset>``, or ``<run>/<dataset>/fold<k>`` for fold k of a cross-validation."""
        return self.root / dataset / f"fold{fold}" if fold else self.root / dataset

    def features(self, dataset: str, encoder: str, fold: int | None = None) -> dict[str, np.ndarray] | None:
        features = read_features(self.dataset_dir(dataset, fold) / "eval" / encoder / FEATURES)
        return None if features is None else features.arrays()

    def predictions(self, relative: str) -> dict[str, np.ndarray] | None:
        if not relative or not (self.root / relative).is_file():
            return None
        try:
            return load_predictions(self.root / relative)
        except DataError:
            return None

    def histories(self, dataset: str, fold: int | None = None) -> dict[str, dict[str, np.ndarray]]:
        """encoder id → column → values, from pretrain/*/history.csv (of ``fold`` under cross-validation)."""
        out = {}
        for path in sorted((self.dataset_dir(dataset, fold) / "pretrain").glob(f"*/{HISTORY}")):
            if columns := history_columns(path):
                out[path.parent.name] = columns
        return out

    def augment_preview(self, dataset: str) -> bytes | None:
        path = self.root / dataset / "augment_preview.png"
        if not path.is_file():
            return None
        data = path.read_bytes()
        return data if data.startswith(PNG_SIGNATURE) else None

    def retrieval(self, dataset: str, encoder: str, fold: int | None = None) -> dict[str, np.ndarray] | None:
        """The retrieval images evaluation wrote beside the encoder's features (None when missing)."""
        return load_retrieval(self.dataset_dir(dataset, fold) / "eval" / encoder / RETRIEVAL)
