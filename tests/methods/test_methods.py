"""Every registered method computes a finite loss, back-propagates, and its loss falls on a tiny set."""

from __future__ import annotations

import pytest
import torch

from medssl.errors import ConfigError
from medssl.methods import METHODS, STUDY_METHODS, build_method
from medssl.models import build_encoder


def test_registry_holds_the_study_methods_and_more() -> None:
    assert set(STUDY_METHODS) <= set(METHODS)
    assert {"byol", "barlowtwins", "mocov2"} <= set(METHODS)
    with pytest.raises(ConfigError, match="unknown"):
        build_method("nope", build_encoder("resnet18"))


def test_simsiam_keeps_its_predictor() -> None:
    method = build_method("simsiam", build_encoder("resnet18"))
    assert hasattr(method, "predictor")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_loss_falls_on_a_tiny_set(name: str, tiny_data) -> None:
    torch.manual_seed(0)
    options = {"queue_size": 64} if name == "mocov2" else {}
    method = build_method(name, build_encoder("resnet18"), **options)
    images = torch.from_numpy(tiny_data.images[:32]).permute(0, 3, 1, 2).float() / 255
    view0, view1 = images, images.flip(-1)  # two fixed views: the objective is deterministic
    optimizer = torch.optim.SGD(method.parameters(), lr=method.default_lr, momentum=0.9)
    losses = []
    for step in range(12):
        loss = method.loss(view0, view1)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.on_step_end(step / 12)
        losses.append(loss.item())
    # From step 2: MoCo's queue (64 keys, 32 per step) is full only then; before, its loss is artificially low.
    assert sum(losses[-3:]) / 3 < sum(losses[2:5]) / 3, losses
