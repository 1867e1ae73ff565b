"""Cost per image of SSL methods against SimCLR's two views on the same machine: the multi-crop methods (SwAV,
DINO), or any ``method:backbone`` pairs such as the ViT methods (DINO, MAE on ViT-Tiny) against ResNet-18 SimCLR.

Each run's real training step (``PretrainModule.step_loss``: gather, augmentation of every view, forward,
loss; then backward, the method's pre-step hook, fused SGD and its post-step hook) is timed on the same batches
of ``--data``, in rounds that take one step of each run in turn, so that a change of load on a shared
machine hits all of them alike. Prints one JSON line: images/s of each run (median over rounds) and its
cost per image relative to the first run.

    .venv/bin/python benchmarks/multicrop_cost.py --data synthetic [--rounds 8] [--batch-size 128]
    .venv/bin/python benchmarks/multicrop_cost.py --runs simclr:resnet18,dino:vit_tiny,mae:vit_tiny
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from common import accelerator, add_common_args, clock, load_data, machine_info, quiet, resolve_device

from medssl.train.api import build_module, cpu_has_bf16_matmul
from medssl.train.config import PretrainConfig

MULTI_CROP_RUNS = "simclr:resnet18,swav:resnet18,dino:resnet18"
VIT_RUNS = "simclr:resnet18,dino:vit_tiny,mae:vit_tiny"


def step(module, indices: torch.Tensor, optimizer: torch.optim.Optimizer, bf16: bool) -> None:
    """One optimiser step as the Lightning module takes it (without the Trainer)."""
    optimizer.zero_grad(set_to_none=False)
    with torch.autocast(module.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = module.step_loss(indices)
    loss.backward()
    module.method.before_optimizer_step(epoch=1)
    optimizer.step()
    module.method.on_step_end(progress=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=8, help="Timed rounds (one step of each run each).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed rounds first.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--runs",
        default=MULTI_CROP_RUNS,
        help=f"method:backbone pairs to time, the first the reference (ViT methods: {VIT_RUNS}).",
    )
    args = parser.parse_args()
    runs = [tuple(run.split(":", 1)) for run in args.runs.split(",")]
    quiet()
    device = resolve_device(args.device)
    data = load_data(args)
    automatic = device.type == "cuda" or cpu_has_bf16_matmul()
    bf16 = args.precision == "bf16-mixed" or (args.precision == "auto" and automatic)
    modules, optimizers = {}, {}
    for method, backbone in runs:
        name = f"{method}:{backbone}"
        config = PretrainConfig(
            method=method, backbone=backbone, batch_size=args.batch_size, accelerator=accelerator(device)
        )
        module = build_module(config, data).to(device)
        module.images = module.images.to(device)
        module.step_budget = 1000  # the schedule's length, so that no Trainer is asked for it
        module.method.train()
        modules[name] = module
        optimizers[name] = module.configure_optimizers()[0][0]
    first = next(iter(modules))
    batches = list(modules[first].batches)
    seconds: dict[str, list[float]] = {name: [] for name in modules}
    for round_ in range(args.warmup + args.rounds):
        indices = batches[round_ % len(batches)].to(device)
        for name in modules:
            start = clock(device)
            step(modules[name], indices, optimizers[name], bf16)
            if round_ >= args.warmup:
                seconds[name].append(clock(device) - start)
    rate = {name: len(indices) / statistics.median(times) for name, times in seconds.items()}
    result = {
        "images_per_s": {name: round(value, 2) for name, value in rate.items()},
        f"cost_vs_{first}": {name: round(rate[first] / value, 2) for name, value in rate.items()},
        "views": {name: str(module.method.view_plan) for name, module in modules.items()},
        "batch_size": len(indices),
        "image_size": args.image_size,
        "precision": "bf16-mixed" if bf16 else "32-true",
        **machine_info(device),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
