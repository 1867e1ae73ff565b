"""Checks run before a study's first cell, so that a missing prerequisite costs seconds, not hours.

Every check returns the problems it found as one-line messages that say how to fix each; ``preflight``
collects all of them and stops with a single error listing everything, before anything is written.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from medssl.errors import MedsslError
from medssl.methods import method_problems
from medssl.models.backbones import TIMM_PREFIX, build_backbone
from medssl.models.specs import backbone_problems, family, family_problems
from medssl.rundir.paths import writable_problem
from medssl.study.config import StudyConfig
from medssl.train.api import device_problem

WEIGHT_COPIES_PER_RUN = 4
"""Copies of the weights a pre-training run keeps: ``last.ckpt`` (weights and SGD momentum), ``best.ckpt``
(weights) and ``encoder.pt``."""
DOWNLOAD_TIMEOUT_S = 60.0


class PreflightError(MedsslError):
    """A study cannot start; the message lists every missing prerequisite."""


def imagenet_backbones(study: StudyConfig) -> list[str]:
    """Registered backbones whose ImageNet weights the study needs: baselines, fine-tuned specs and ImageNet
    inits (``timm:`` backbones are checked by ``backbone_problems``)."""
    specs = [*study.baselines, *study.evaluation.finetune]
    names = [spec.partition(":")[2] for spec in specs if spec.startswith("imagenet:")]
    cells = study.ssl_cells()
    names += [c.backbone for c in cells if c.init == "imagenet" and not c.backbone.startswith(TIMM_PREFIX)]
    return list(dict.fromkeys(names))


def image_sizes(study: StudyConfig) -> list[int]:
    return sorted({config.image_size for config in study.datasets.values()})


def spec_problems(study: StudyConfig) -> list[str]:
    """Each ``timm:`` and ``hf:`` baseline or fine-tuned spec: known name, memory, local weights that load
    strictly, and every dataset's image size."""
    specs = dict.fromkeys(s for s in [*study.baselines, *study.evaluation.finetune] if family(s))
    return [problem for spec in specs for problem in family_problems(spec, image_sizes(study))]


def ssl_backbone_problems(study: StudyConfig) -> list[str]:
    """Each SSL backbone under each init: known, takes every dataset's image size, its weights load; and each
    method takes its backbones (MAE needs a ViT; a grid that mixes kinds puts MAE in ``ssl_encoders``)."""
    pairs = list(dict.fromkeys((cell.backbone, cell.init) for cell in study.ssl_cells()))
    found = [p for name, init in pairs for p in backbone_problems(name, init, image_sizes(study))]
    methods = dict.fromkeys((cell.method, cell.backbone) for cell in study.ssl_cells())
    found += [p for method, backbone in methods for p in method_problems(method, backbone)]
    return list(dict.fromkeys(found))


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def weight_problems(study: StudyConfig) -> list[str]:
    """Loads each needed ImageNet backbone the way training will (cache, then download) and reports failures."""
    problems = []
    for name in imagenet_backbones(study):
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                build_backbone(name, "imagenet")
        except MedsslError as error:
            problems.append(f"imagenet:{name}: {error}")
    return problems


def data_problems(study: StudyConfig) -> list[str]:
    """Each dataset's path exists and its layout is recognised (file lists only; no pixel is decoded)."""
    from medssl.data.dataset import read_table

    problems = []
    for name, config in study.datasets.items():
        try:
            read_table(config)
        except MedsslError as error:
            problems.append(f"dataset '{name}': {error}")
    return problems


def device_problems(study: StudyConfig) -> list[str]:
    """The requested accelerator exists and has as many devices as asked for."""
    problem = device_problem(study.pretrain, ("pretrain.accelerator=", "pretrain.devices="))
    return [problem] if problem else []


SLURM_COMMANDS = ("sbatch", "srun")
"""What ``launcher: slurm`` runs: submitit submits with sbatch and refuses to start without srun."""


def launcher_problems(study: StudyConfig) -> list[str]:
    """``launcher: slurm`` runs where SLURM's commands are (a cluster's login node)."""
    missing = [command for command in SLURM_COMMANDS if shutil.which(command) is None]
    if study.launcher != "slurm" or not missing:
        return []
    return [
        f"launcher slurm: {' and '.join(missing)} not found, so this machine is not a SLURM cluster's node; "
        "run the command on the cluster's login node, or use --launcher local (or sequential)"
    ]


def _parameter_bytes(backbone: str) -> int:
    with torch.device("meta"):
        model = build_backbone(backbone, "random")
    return sum(p.numel() * 4 for p in model.parameters())


def estimated_checkpoint_bytes(study: StudyConfig) -> int:
    """Rough disk need of the SSL runs: ``WEIGHT_COPIES_PER_RUN`` copies of each backbone's weights."""
    runs_per_cell = len(study.datasets) * study.pretrain_seeds * len(study.pretrain_fractions)
    sizes = {name: _parameter_bytes(name) for name in {cell.backbone for cell in study.ssl_cells()}}
    return sum(runs_per_cell * WEIGHT_COPIES_PER_RUN * sizes[cell.backbone] for cell in study.ssl_cells())


def output_problems(study: StudyConfig, out: Path) -> list[str]:
    """``out`` is (or can be made) a writable folder with room for the checkpoints."""
    if out.exists() and not out.is_dir():
        return [f"--out {out} is a file; choose a folder"]
    if problem := writable_problem(out):
        return [problem]
    existing = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    need, free = estimated_checkpoint_bytes(study), shutil.disk_usage(existing).free
    if need > free:
        return [
            f"--out {out}: about {need / 1e9:.1f} GB of checkpoints are needed but {free / 1e9:.1f} GB are free "
            f"on {existing}; free disk space or choose another --out"
        ]
    return []


def preflight(study: StudyConfig, out: str | Path) -> None:
    """Raises one ``PreflightError`` listing every missing prerequisite of ``study``; writes nothing."""
    out = Path(out)
    problems = [
        *data_problems(study),
        *weight_problems(study),
        *spec_problems(study),
        *ssl_backbone_problems(study),
        *([] if study.launcher == "slurm" else device_problems(study)),  # SLURM cells run on other nodes
        *launcher_problems(study),
        *output_problems(study, out),
    ]
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise PreflightError(f"the study cannot start; nothing was run. Fix these first:\n{listing}")
