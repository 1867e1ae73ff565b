"""Time frozen feature extraction of a foundation-model ViT (default DINOv2 ViT-S/14) at 224 px on the CPU.

The model's weights are random (the timing does not depend on them): they are written to a temporary
``.safetensors`` file and loaded through the ``timm:<name>@<file>`` spec, as a user's local weights are.
Features are extracted by medssl's own path (``medssl.evaluate.features.extract_features``: uint8 images ->
[0, 1] -> the model's normalisation -> class token) from random 224-px grayscale images held in memory, so
only the model's forward is timed, not decoding.

    nice .venv/bin/python benchmarks/frozen_features.py [--images 256] [--threads 2] [--batch-size 64]

Prints one JSON line: images/s, seconds, load time, peak RSS (and RSS once the model was loaded), machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import machine_info, usable_cores

from medssl.evaluate.features import extract_features
from medssl.models.encoder import encoder_from_spec
from medssl.models.timm_encoder import create_model


def rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small_patch14_dinov2.lvd142m")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.safetensors"
        torch.manual_seed(0)
        save_file(create_model(args.model).state_dict(), path)
        start = time.perf_counter()
        encoder = encoder_from_spec(f"timm:{args.model}@{path}")
        load_s = time.perf_counter() - start
    encoder.check_image_size(args.image_size)
    rss_loaded = rss_mb()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.image_size, args.image_size, 1), dtype=np.uint8)
    extract_features(encoder, images[: args.batch_size], args.batch_size)  # warm-up: one batch
    start = time.perf_counter()
    features = extract_features(encoder, images, args.batch_size)
    seconds = time.perf_counter() - start
    result = {
        "model": args.model,
        "title": encoder.meta["title"],
        "image_size": args.image_size,
        "images": args.images,
        "batch_size": args.batch_size,
        "feature_dim": int(features.shape[1]),
        "images_per_s": round(args.images / seconds, 2),
        "seconds": round(seconds, 2),
        "load_s": round(load_s, 2),
        "rss_after_load_mb": round(rss_loaded),
        "peak_rss_mb": round(rss_mb()),
        "machine": machine_info(torch.device("cpu")),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
