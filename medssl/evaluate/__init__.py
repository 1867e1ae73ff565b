"""Evaluation protocols (kNN, weighted kNN, linear probe, fine-tuning), baselines and trustworthy metrics.

Names are imported lazily, so ``from medssl.evaluate.metrics import ...`` stays light (no Lightning). kNN search
lives in ``medssl.common.knn``, shared with the training monitor.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PROTOCOLS": "config",
    "EvaluationConfig": "config",
    "encoder_identity": "api",
    "evaluate_cell": "api",
    "evaluate_encoder": "api",
    "evaluate_finetune": "api",
    "load_predictions": "api",
    "predictions_name": "api",
    "score_predictions": "api",
    "compare_predictions": "compare",
    "resolve_predictions": "compare",
    "Features": "features",
    "encoder_features": "features",
    "extract_features": "features",
    "label_subset": "fractions",
    "classification_metrics": "metrics",
    "paired_bootstrap": "metrics",
    "linear_probe": "probe",
    "RESULT_COLUMNS": "medssl.rundir.results",
    "POOL_COLUMNS": "medssl.rundir.results",
    "append_results": "medssl.rundir.results",
    "read_results": "medssl.rundir.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medssl.evaluate' has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(importlib.import_module(module if "." in module else f"medssl.evaluate.{module}"), name)
