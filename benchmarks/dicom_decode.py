"""Decode and cache DICOM against the same images as PNG: ~5,000 chest X-rays at 224 px, in one process.

The DICOM files are the PACS-like export of ``dicom_export.py`` (12 bits stored, rescale, window, half
MONOCHROME1, fake patients); the PNGs hold the same grey pixels as 8-bit files in the same layout. Each
format goes through what ``medssl pretrain`` does before training, into an empty pixel cache: the table
(DICOM: patients read from the headers), the fingerprint (every file hashed), decoding and the cache write.
Target: DICOM takes at most **2×** PNG's time. Wall and CPU seconds are printed (the CPU seconds include the
decoding worker processes): the ratio of each format's fastest of ``--repeats`` alternating runs, of their
medians, and of their least CPU time.

    .venv/bin/python benchmarks/dicom_decode.py [--images 5000] [--work /tmp/medssl-dicom-bench]

The exported files are kept in ``--work`` and reused by the next run. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
from common import CHEST_XRAY, machine_info
from dicom_export import export, grey_of
from PIL import Image

from medssl.data.cache import load_pixels
from medssl.data.dataset import DataConfig, read_table

TARGET_RATIO = 2.0


def png_copy(pairs: list[tuple[Path, Path]], dicom_root: Path, png_root: Path) -> None:
    """The same grey pixels as 8-bit PNG, at the DICOM files' paths (``.png`` for ``.dcm``)."""
    for jpeg, dicom in pairs:
        png = (png_root / dicom.relative_to(dicom_root)).with_suffix(".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grey_of(jpeg)).save(png)


def prepare_files(source: Path, work: Path, images: int) -> tuple[Path, Path]:
    """``work/dicom`` and ``work/png`` with the first ``images`` images of ``source`` (made once)."""
    dicom, png = work / f"dicom-{images}", work / f"png-{images}"
    if not (dicom.is_dir() and png.is_dir()):
        shutil.rmtree(dicom, ignore_errors=True)
        shutil.rmtree(png, ignore_errors=True)
        png_copy(export(source, dicom, range(images)), dicom, png)
    return dicom, png


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the decoding worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_format(root: Path, cache: Path, size: int) -> dict[str, float]:
    """Wall seconds for the table and for fingerprint + decode + cache write into the empty ``cache``, and
    the CPU seconds of both (on a shared machine the CPU time is the steadier figure)."""
    shutil.rmtree(cache, ignore_errors=True)
    config = DataConfig(path=str(root), image_size=size, cache_dir=str(cache))
    cpu, start = cpu_seconds(), time.perf_counter()
    table = read_table(config)
    read = time.perf_counter()
    pixels = load_pixels(table, size, cache, intensity=config.intensity)
    done = time.perf_counter()
    assert len(pixels.kept) == len(table.records)
    return {
        "table_s": round(read - start, 2),
        "pixels_s": round(done - read, 2),
        "total_s": round(done - start, 2),
        "cpu_s": round(cpu_seconds() - cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=CHEST_XRAY, help="The chest X-ray folder (JPEG).")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--repeats", type=int, default=2, help="Alternating timings per format; the fastest counts."
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/medssl-dicom-bench"), help="Files and caches."
    )
    args = parser.parse_args()
    if not args.source.is_dir():
        sys.exit(f"error: {args.source} not found; pass --source with the chest X-ray folder")
    dicom, png = prepare_files(args.source, args.work, args.images)
    runs: dict[str, list[dict[str, float]]] = {"png": [], "dicom": []}
    for _ in range(args.repeats):
        for name, root in (("png", png), ("dicom", dicom)):
            runs[name].append(time_format(root, args.work / f"cache-{name}", args.image_size))
    best = {name: min(times, key=lambda t: t["total_s"]) for name, times in runs.items()}
    ratio = best["dicom"]["total_s"] / best["png"]["total_s"]
    cpu = {name: min(t["cpu_s"] for t in times) for name, times in runs.items()}
    median = {name: statistics.median(t["total_s"] for t in times) for name, times in runs.items()}
    result = {
        "images": args.images,
        "image_size": args.image_size,
        "png": best["png"],
        "dicom": best["dicom"],
        "dicom_vs_png": round(ratio, 2),
        "dicom_vs_png_median": round(median["dicom"] / median["png"], 2),
        "dicom_vs_png_cpu": round(cpu["dicom"] / cpu["png"], 2),
        "target": f"<= {TARGET_RATIO}",
        "meets_target": ratio <= TARGET_RATIO,
        "all_runs": runs,
        "machine": machine_info(torch.device("cpu")),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
