"""A study: datasets × SSL methods × backbones/inits × protocols × label fractions × seeds, plus baselines."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from medssl.config import StrictModel, load_config
from medssl.data.dataset import DataConfig
from medssl.evaluate.config import EvaluationConfig
from medssl.models.specs import check_spec
from medssl.train.config import PretrainConfig, known_method

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "demo.yaml"


CELL_AXES = ("method", "backbone", "init", "seed", "pool_fraction", "data")
"""Pre-training settings that vary from cell to cell: a study sets them with ``methods``, ``backbones``,
``inits``, ``pretrain_seeds``, ``pretrain_fractions`` and ``datasets``, never in its ``pretrain`` template."""


def _unit_fractions(values: list[float], what: str) -> list[float]:
    if not values or any(not 0 < v <= 1 for v in values):
        raise ValueError(f"{what} must be in (0, 1]")
    return sorted(set(values))


class EvaluationSettings(EvaluationConfig):
    """A study's ``evaluation:``: an ``EvaluationConfig`` for the frozen protocols, plus the encoders that are
    fine-tuned (``finetune`` is not among its protocols)."""

    finetune: list[str] = Field(
        default_factory=list,
        description="Encoders fine-tuned end to end: 'ssl' (every SSL encoder), 'imagenet:<bb>', 'random:<bb>', "
        "'timm:<name>', 'hf:<folder>'",
    )

    @field_validator("protocols")
    @classmethod
    def _frozen(cls, values: list[str]) -> list[str]:
        if "finetune" in values:
            raise ValueError("list the encoders to fine-tune in evaluation.finetune ('ssl', 'imagenet:<bb>')")
        return values

    @field_validator("label_fractions")
    @classmethod
    def _sorted(cls, values: list[float]) -> list[float]:
        return sorted(set(values))


class SlurmSettings(StrictModel):
    """What each cell's SLURM job asks for (``launcher: slurm``)."""

    partition: str | None = Field(None, description="SLURM partition (default: the cluster's)")
    account: str | None = None
    time_min: int = Field(720, ge=1, description="Time limit of one cell's job in minutes")
    gpus_per_cell: int = Field(1, ge=0)
    cpus_per_cell: int = Field(8, ge=1)
    mem_gb: int = Field(32, ge=1, description="Memory of one cell's job in GB")
    array_parallelism: int = Field(64, ge=1, description="Jobs of one array running at once")
    setup: list[str] = Field(
        default_factory=list, description="Shell lines run before each job (module load, conda activate)"
    )


class SslEncoder(StrictModel):
    """One SSL encoder beyond the ``methods`` × ``backbones`` × ``inits`` grid (e.g. SimCLR continued from
    ImageNet EfficientNet-Lite0 beside random-init ResNet-18 methods), with its own batch size or epochs."""

    method: str
    backbone: str
    init: Literal["random", "imagenet", "pretrained"] = "imagenet"
    batch_size: int | None = Field(None, ge=2, description="Its batch size (default: pretrain.batch_size)")
    epochs: int | None = Field(None, ge=1, description="Its epochs (default: pretrain.epochs)")

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        return known_method(value)

    def recipe(self) -> dict[str, int]:
        """The pretrain settings it sets for itself."""
        return {
            k: v for k, v in {"batch_size": self.batch_size, "epochs": self.epochs}.items() if v is not None
        }


class StudyConfig(StrictModel):
    """What ``medssl benchmark`` runs; see configs/*.yaml for examples."""

    datasets: dict[str, DataConfig]
    methods: list[str] = ["simclr", "dclw", "simsiam", "vicreg"]
    backbones: list[str] = ["resnet18"]
    inits: list[Literal["random", "imagenet", "pretrained"]] = Field(
        ["random"],
        description="SSL starting weights: random, imagenet, or pretrained (a timm:<name> backbone's own weights)",
    )
    ssl_encoders: list[SslEncoder] = Field(
        default_factory=list,
        description="SSL encoders beyond the grid: {method, backbone, init (default imagenet), batch_size, epochs}",
    )
    pretrain_seeds: int = Field(1, ge=1)
    pretrain_fractions: list[float] = Field(
        [1.0],
        description="Shares of the training images SSL pre-trains on (nested pools; evaluation unchanged); "
        "with more than one, set pretrain.steps so that every pool gets the same compute",
    )
    pretrain: PretrainConfig = Field(
        default_factory=PretrainConfig,
        description="Template of every SSL cell's PretrainConfig; the method, backbone, init, seed and data vary",
    )
    baselines: list[str] = Field(
        default_factory=lambda: ["random:resnet18", "imagenet:efficientnet_lite0"],
        description="Frozen baselines as encoder specs: 'random:<bb>' (untrained), 'imagenet:<bb>', "
        "'timm:<name>[@<file>]' (timm weights from the local cache or a file), 'hf:<folder>' (transformers)",
    )
    evaluation: EvaluationSettings = EvaluationSettings()
    launcher: Literal["sequential", "local", "slurm"] = Field(
        "sequential",
        description="sequential: one cell after another in this process; local: `workers` cells at once on this "
        "machine; slurm: one submitit job per cell",
    )
    workers: int | None = Field(
        None, ge=1, description="local: cells at once (default: one per GPU, else one per 4 CPU cores)"
    )
    threads_per_worker: int | None = Field(
        None, ge=1, description="local: CPU threads of each worker (default: the CPU cores / workers)"
    )
    slurm: SlurmSettings = SlurmSettings()

    @field_validator("pretrain")
    @classmethod
    def _template(cls, value: PretrainConfig) -> PretrainConfig:
        given = sorted(set(CELL_AXES) & value.model_fields_set)
        if given:
            raise ValueError(
                f"{', '.join(given)} vary per cell: set the study's methods, backbones, inits, pretrain_seeds, "
                "pretrain_fractions and datasets instead"
            )
        return value

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, values: list[str]) -> list[str]:
        return [known_method(name) for name in values]

    @field_validator("pretrain_fractions")
    @classmethod
    def _pools(cls, values: list[float]) -> list[float]:
        return _unit_fractions(values, "pretrain_fractions")

    @model_validator(mode="after")
    def _same_compute(self) -> StudyConfig:
        if len(self.pretrain_fractions) > 1 and self.pretrain.steps is None:
            warnings.warn(
                f"pretrain_fractions {self.pretrain_fractions} without pretrain.steps: every pool trains "
                f"{self.pretrain.epochs} epochs, so a smaller pool also gets less compute; set pretrain.steps "
                "for a constant step budget",
                stacklevel=2,
            )
        return self

    @model_validator(mode="after")
    def _extra_encoders_not_in_grid(self) -> StudyConfig:
        grid = {(m, b, i) for m in self.methods for b in self.backbones for i in self.inits}
        seen: set[tuple[str, str, str]] = set()
        for extra in self.ssl_encoders:
            key = (extra.method, extra.backbone, extra.init)
            if key in grid or key in seen:
                raise ValueError(f"ssl_encoders: {'/'.join(key)} is listed twice (or is already in the grid)")
            seen.add(key)
        return self

    def ssl_cells(self) -> list[SslEncoder]:
        """Every SSL encoder the study pre-trains: the grid's, then ``ssl_encoders``."""
        grid = [
            SslEncoder(method=m, backbone=b, init=i)
            for m in self.methods
            for b in self.backbones
            for i in self.inits
        ]
        return [*grid, *self.ssl_encoders]

    @field_validator("baselines", "evaluation")
    @classmethod
    def _specs(cls, value):  # type: ignore[no-untyped-def]
        specs = value if isinstance(value, list) else [s for s in value.finetune if s != "ssl"]
        for spec in specs:
            check_spec(spec)
        return value


def load_study(path: str | Path | None, overrides: list[str] | None = None) -> StudyConfig:
    """The study in ``path`` (the embedded demo when None), with ``key=value`` overrides."""
    return load_config(StudyConfig, path or DEFAULT_CONFIG, overrides)
