"""The evaluation settings, once: ``medssl evaluate --config``, ``evaluate_encoder`` and a study's ``evaluation:``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from medssl.config import StrictModel

PROTOCOLS = ("knn", "knn_weighted", "linear", "finetune")
"""Every evaluation protocol by its name in configs, results and predictions files."""
FROZEN_PROTOCOLS = ("knn", "knn_weighted", "linear")
"""The protocols that score cached frozen features (fine-tuning trains the encoder)."""
DEFAULT_TEMPERATURE = 0.1
"""Softmax temperature of the weighted kNN."""


class EvaluationConfig(StrictModel):
    """How an encoder is evaluated: every protocol × label fraction × seed is one cell (one results row)."""

    protocols: list[str] = Field(["knn", "linear"], description=f"Among {', '.join(PROTOCOLS)}")
    label_fractions: list[float] = Field(
        [1.0], description="Shares of the training (and validation) labels, each in (0, 1]"
    )
    seeds: int = Field(1, ge=1, description="Evaluation seeds 0..n-1 (label subsets, fine-tuning)")
    k: int = Field(200, ge=1, description="Neighbours of the kNN protocols (study: 200)")
    temperature: float = Field(DEFAULT_TEMPERATURE, gt=0, description="Softmax temperature of knn_weighted")
    class_weight: Literal["balanced"] | None = Field(
        None, description="'balanced' reweights classes in the probe and fine-tuning; None: unweighted"
    )
    n_bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples of the 95% CIs")
    finetune_epochs: int = Field(
        30,
        ge=1,
        description="Fine-tuning budget in passes over the labelled images (at least finetune_min_steps "
        "steps), and the number of validations, evenly spaced",
    )
    finetune_min_steps: int = Field(
        200, ge=1, description="Fewest optimiser steps of fine-tuning, however few the labelled images"
    )
    patience: int = Field(
        5, ge=1, description="Fine-tuning validations without a better score before it stops"
    )

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, values: list[str]) -> list[str]:
        unknown = [p for p in values if p not in PROTOCOLS]
        if unknown or not values:
            raise ValueError(
                f"protocol(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(PROTOCOLS)}"
            )
        return list(dict.fromkeys(values))

    @field_validator("label_fractions")
    @classmethod
    def _unit_fractions(cls, values: list[float]) -> list[float]:
        if not values or any(not 0 < v <= 1 for v in values):
            raise ValueError("label fractions must be in (0, 1]")
        return values

    def cells(self) -> list[tuple[str, float, int]]:
        """(protocol, label fraction, seed) of every cell, in evaluation order."""
        return [(p, f, s) for p in self.protocols for f in self.label_fractions for s in range(self.seeds)]
