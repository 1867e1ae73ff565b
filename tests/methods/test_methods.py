"""Every registered method computes a finite loss, back-propagates, and its loss falls on a tiny set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medssl.errors import ConfigError
from medssl.methods import METHODS, STUDY_METHODS, build_method, method_problems
from medssl.methods.base import ViewPlan, Views
from medssl.models import build_encoder


def fixed_views(plan: ViewPlan, images: torch.Tensor) -> Views:
    """Deterministic views of ``images`` for ``plan``: the images and their mirror images as the global crops
    (more turn by quarter turns), a corner of each enlarged to the local side as the local crops."""
    turns = [images, images.flip(-1)] + [images.rot90(k, (-2, -1)) for k in range(1, plan.global_crops - 1)]
    side, half = plan.local_side(images.shape[-1]), images.shape[-1] // 2
    corners = [images[..., (j // 2 % 2) * half :, (j % 2) * half :][..., :half, :half] for j in range(4)]
    local = [
        F.interpolate(corners[j % 4], size=(side, side), mode="bilinear") for j in range(plan.local_crops)
    ]
    return Views(tuple(turns[: plan.global_crops]), tuple(local))


def backbone_for(method: str) -> str:
    """ResNet-18, or for a method that needs a ViT (MAE) ViT-Tiny (8 px patches: 16 tokens of the 32 px set)."""
    return "vit_tiny" if method_problems(method, "resnet18") else "resnet18"


def test_registry_holds_the_study_methods_and_more() -> None:
    assert set(STUDY_METHODS) <= set(METHODS)
    assert {"byol", "barlowtwins", "mocov2", "swav", "dino", "mae"} <= set(METHODS)
    with pytest.raises(ConfigError, match="unknown"):
        build_method("nope", build_encoder("resnet18"))


def test_simsiam_loss_trains_its_predictor_and_stops_gradients_at_the_targets() -> None:
    torch.manual_seed(0)
    method = build_method("simsiam", build_encoder("resnet18"))
    views = torch.rand(2, 8, 3, 32, 32)
    method.loss(*views).backward()
    predictor_grads = [p.grad for p in method.predictor.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in predictor_grads)  # the predictor is in the loss
    # Stop-gradient: make the predictor's output a constant; then only the targets depend on the projector,
    # and they are detached, so no gradient may reach it (nor the backbone).
    last = method.predictor.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.normal_()
    method.zero_grad()
    method.loss(*views).backward()
    for parameter in [*method.projector.parameters(), *method.encoder.parameters()]:
        assert parameter.grad is None or parameter.grad.abs().sum() == 0


def test_every_method_has_a_report_title_and_a_learning_rate() -> None:
    for name, method in METHODS.items():
        assert method.title and method.default_lr > 0, name


@pytest.mark.parametrize(("n_train", "batch", "queue"), [(1000, 64, 960), (50, 64, 64)])
def test_moco_sizes_its_queue_from_the_training_set(n_train: int, batch: int, queue: int) -> None:
    method = METHODS["mocov2"].for_training_set(build_encoder("resnet18"), n_train, batch)
    assert method.criterion.memory_bank.size[0] == queue
    plain = METHODS["simclr"].for_training_set(build_encoder("resnet18"), n_train, batch)
    assert type(plain).__name__ == "SimCLR"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_loss_falls_on_a_tiny_set(name: str, tiny_data) -> None:
    torch.manual_seed(0)
    options = {"queue_size": 64} if name == "mocov2" else {}
    method = build_method(name, build_encoder(backbone_for(name)), **options)
    images = torch.from_numpy(tiny_data.images[:32]).permute(0, 3, 1, 2).float() / 255
    views = fixed_views(method.view_plan, images)  # fixed views: the objective is deterministic
    optimizer = torch.optim.SGD(method.parameters(), lr=method.default_lr, momentum=0.9)
    losses = []
    for step in range(12):
        loss = method.training_loss(views)
        assert torch.isfinite(loss) and loss.shape == ()
        optimizer.zero_grad()
        loss.backward()
        method.before_optimizer_step(epoch=1)
        optimizer.step()
        method.on_step_end(step / 12)
        losses.append(loss.item())
    # From step 2: MoCo's queue (64 keys, 32 per step) is full only then; before, its loss is artificially low.
    assert sum(losses[-3:]) / 3 < sum(losses[2:5]) / 3, losses
