"""Two CPU processes (gloo): losses gather negatives across ranks, and a DDP training run completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightly.loss import BarlowTwinsLoss, DCLWLoss, NTXentLoss, VICRegLoss

LOSSES = {
    "simclr": lambda gather: NTXentLoss(temperature=0.5, gather_distributed=gather),
    "dclw": lambda gather: DCLWLoss(temperature=0.1, sigma=0.5, gather_distributed=gather),
    "vicreg": lambda gather: VICRegLoss(gather_distributed=gather),
    "barlowtwins": lambda gather: BarlowTwinsLoss(gather_distributed=gather),
}


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 32, generator=generator), torch.randn(16, 32, generator=generator)


def _rank_losses(rank: int, world: int, store_path: str, results: dict) -> None:
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    z0, z1 = _global_batch()
    local = slice(rank * 8, rank * 8 + 8)
    for name, make in LOSSES.items():
        for gather in (True, False):
            loss = make(gather)(z0[local], z1[local]).detach()
            results[(name, rank, gather, "raw")] = float(loss)
            dist.all_reduce(loss)
            results[(name, rank, gather)] = float(loss / world)
    dist.destroy_process_group()


def test_two_process_loss_equals_single_process_loss_on_the_global_batch(tmp_path: Path) -> None:
    results = mp.Manager().dict()
    mp.spawn(_rank_losses, args=(2, str(tmp_path / "store"), results), nprocs=2, join=True)
    z0, z1 = _global_batch()
    for name, make in LOSSES.items():
        single = float(make(False)(z0, z1))
        gathered, local_only = results[(name, 0, True)], results[(name, 0, False)]
        assert results[(name, 1, True)] == gathered
        if name == "barlowtwins":
            # lightly standardises each rank's batch, then all-reduces the cross-correlation matrix: every
            # rank computes the same loss from the shared matrix (not the single-process one).
            assert results[(name, 0, True, "raw")] == pytest.approx(results[(name, 1, True, "raw")], rel=1e-6)
            assert results[(name, 0, False, "raw")] != pytest.approx(
                results[(name, 1, False, "raw")], rel=1e-3
            )
        elif name == "dclw":
            # lightly's DCLW normalises its von Mises weights over each rank's own positives, so only the
            # negatives are global: closer to the single-process loss than local-only negatives, not equal.
            assert abs(gathered - single) < abs(local_only - single), (gathered, local_only, single)
        else:
            assert gathered == pytest.approx(single, rel=1e-5), name
            assert local_only != pytest.approx(single, rel=1e-3), name


def test_two_process_training_run_completes(tmp_path: Path, pixel_cache: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "medssl.cli", "pretrain", "--data", "synthetic", "--image-size", "32",
        "--epochs", "1", "--batch-size", "16", "--devices", "2", "--accelerator", "cpu", "--out", str(out),
        "--knn-k", "10", "--set", "data.synthetic.n_images=160", "--set", "data.synthetic.size=32",
        "--set", f"data.cache_dir={pixel_cache}", "--set", "progress_bar=false", "--set", "max_steps_per_epoch=2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "encoder.pt").exists() and (out / "history.csv").exists()
    meta = json.loads((out / "encoder.json").read_text())
    assert meta["images_seen"] == meta["steps"] * 16 * 2  # both processes trained on their own batches
