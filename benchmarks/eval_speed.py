"""Time kNN (k=200) and the linear probe of four encoders on the chest X-ray set at 64 px.

Feature extraction is timed apart from evaluation: features are cached (``features.npz``) and evaluation
reads them back, as a benchmark run does when it evaluates many cells. Target: kNN + linear probe of the four
encoders (1000-resample bootstrap CIs included) in under a minute on 2 CPU cores with features cached.

    .venv/bin/python benchmarks/eval_speed.py [--fresh] [--cache-dir DIR]

Prints one JSON line. Falls back to synthetic data (with a message on stderr) if the shared data is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from medssl.data.cache import default_cache_dir
from medssl.data.dataset import DataConfig, PreparedData, prepare_data
from medssl.evaluate.api import encoder_identity, evaluate_cell
from medssl.evaluate.config import EvaluationConfig
from medssl.evaluate.features import Features, encoder_features, features_key
from medssl.models.encoder import Encoder, build_encoder, encoder_from_spec

CHEST_XRAY = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray_pneumonia"
TARGET_S = 60.0


def load_data(image_size: int) -> PreparedData:
    if CHEST_XRAY.is_dir():
        return prepare_data(DataConfig(path=str(CHEST_XRAY), image_size=image_size))
    print(f"note: {CHEST_XRAY} not found; timing on synthetic data instead", file=sys.stderr)
    return prepare_data(DataConfig(path="synthetic", image_size=image_size, synthetic={"n_images": 5000}))


def encoders() -> list[Encoder]:
    """Two random ResNet-18 initialisations, ImageNet EfficientNet-Lite0 and a random EfficientNet-Lite0."""
    torch.manual_seed(1)
    second = build_encoder("resnet18", "random", method="random", encoder_id="random-resnet18-init1").eval()
    torch.manual_seed(0)
    lite = build_encoder("efficientnet_lite0", "random", method="random").eval()
    return [
        encoder_from_spec("random:resnet18"),
        second,
        encoder_from_spec("imagenet:efficientnet_lite0"),
        lite,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir() / "eval_speed")
    parser.add_argument("--fresh", action="store_true", help="Delete cached features first.")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    data = load_data(args.image_size)
    prepare_s = time.perf_counter() - start
    n_classes = len(data.classes)
    results = []
    for encoder in encoders():
        name = encoder_identity(encoder)["encoder"]
        path = args.cache_dir / data.name / f"{name}-features.npz"
        if args.fresh:
            path.unlink(missing_ok=True)
        cached = path.is_file() and Features.load(path).key == features_key(encoder, data)
        start = time.perf_counter()
        encoder_features(encoder, data, path)  # extracts (or verifies and reads the cache)
        extract_s = time.perf_counter() - start
        start = time.perf_counter()
        features = encoder_features(encoder, data, path)  # features cached from here on
        load_s = time.perf_counter() - start
        cells = {}
        for protocol in ("knn", "linear"):
            start = time.perf_counter()
            row, _ = evaluate_cell(features, protocol, 1.0, 0, n_classes, EvaluationConfig(k=200))
            cells[protocol] = (time.perf_counter() - start, row)
        results.append(
            {
                "encoder": name,
                "features_were_cached": cached,
                "extract_s": round(extract_s, 2),
                "load_cached_s": round(load_s, 2),
                "knn_s": round(cells["knn"][0], 2),
                "linear_s": round(cells["linear"][0], 2),
                "linear_C": cells["linear"][1]["C"],
                "knn_accuracy": round(cells["knn"][1]["accuracy"], 4),
                "linear_accuracy": round(cells["linear"][1]["accuracy"], 4),
                "linear_auroc": round(cells["linear"][1]["auroc"], 4),
            }
        )
    eval_s = sum(r["load_cached_s"] + r["knn_s"] + r["linear_s"] for r in results)
    summary = {
        "benchmark": "eval_speed",
        "data": data.name,
        "image_size": data.image_size,
        "n_train": len(data.split["train"]),
        "n_val": len(data.split["val"]),
        "n_test": len(data.split["test"]),
        "torch_threads": torch.get_num_threads(),
        "prepare_s": round(prepare_s, 2),
        "extract_total_s": round(sum(r["extract_s"] for r in results), 2),
        "knn_linear_total_s": round(eval_s, 2),
        "target_s": TARGET_S,
        "within_target": eval_s < TARGET_S,
        "encoders": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
