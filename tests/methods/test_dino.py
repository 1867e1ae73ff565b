"""DINO: a teacher moved by EMA only, which sees the global crops only; the student sees every crop; the head
and temperature follow the backbone family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medssl.methods import METHODS
from medssl.methods.base import Views
from medssl.models import build_encoder

SIZE = 32


def _views(batch: int = 8) -> Views:
    return Views(
        tuple(torch.rand(batch, 3, SIZE, SIZE) for _ in range(2)),
        tuple(torch.rand(batch, 3, SIZE // 2, SIZE // 2) for _ in range(6)),
    )


def _input_sides(module: nn.Module) -> list[int]:
    """Records the side of every batch ``module`` is called on."""
    sides: list[int] = []
    module.register_forward_pre_hook(lambda _, args: sides.append(args[0].shape[-1]))
    return sides


def test_local_crops_go_through_the_student_only() -> None:
    torch.manual_seed(0)
    method = METHODS["dino"](build_encoder("resnet18"))
    teacher, student = _input_sides(method.momentum_encoder), _input_sides(method.encoder)
    method.training_loss(_views())
    assert teacher == [SIZE]
    assert sorted(student) == [SIZE // 2, SIZE]
    assert method.trained_encoder is method.momentum_encoder  # DINO evaluates the teacher


def test_the_teacher_moves_by_ema_only_and_the_last_layer_is_frozen_in_the_first_epoch() -> None:
    torch.manual_seed(0)
    method = METHODS["dino"](build_encoder("resnet18"))
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    teacher = [*method.momentum_encoder.parameters(), *method.momentum_projector.parameters()]
    student = [*method.encoder.parameters(), *method.projector.parameters()]
    last_layer = method.projector.last_layer.weight_v
    for epoch in (0, 1):
        before = [p.detach().clone() for p in teacher]
        last_before = last_layer.detach().clone()
        optimizer.zero_grad()
        method.training_loss(_views()).backward()
        assert all(p.grad is None and not p.requires_grad for p in teacher)
        method.before_optimizer_step(epoch)
        optimizer.step()
        frozen = torch.equal(last_layer, last_before)
        assert frozen == (epoch == 0)
        method.on_step_end(progress=0.5)
        m = 0.99 + 0.01 * (1 - torch.cos(torch.tensor(0.5 * torch.pi))).item() / 2  # cosine 0.99 -> 1
        for old, new, online in zip(before, teacher, student, strict=True):
            torch.testing.assert_close(new, m * old + (1 - m) * online.detach())


def _without_batch_norm(encoder: nn.Module) -> nn.Module:
    """The encoder with every batch norm replaced by a layer norm over channels (a stand-in for a ViT)."""
    for name, child in encoder.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(encoder, name, nn.GroupNorm(1, child.num_features))
        else:
            _without_batch_norm(child)
    return encoder


def test_head_and_teacher_temperature_follow_the_backbone_family() -> None:
    resnet = METHODS["dino"](build_encoder("resnet18"))
    assert any(isinstance(m, nn.BatchNorm1d) for m in resnet.projector.modules())
    temps = []
    for progress in (0.0, 0.5, 1.0):
        resnet.on_step_end(progress)
        temps.append(resnet.teacher_temp)
    assert temps == [0.04, 0.04, 0.04]  # DINO's ResNet recipe: no warm-up

    no_bn = METHODS["dino"](_without_batch_norm(build_encoder("resnet18")))
    assert not any(isinstance(m, nn.BatchNorm1d) for m in no_bn.projector.modules())
    assert no_bn.teacher_temp == 0.04
    temps = []
    for progress in (0.15, 0.3, 0.9):
        no_bn.on_step_end(progress)
        temps.append(no_bn.teacher_temp)
    assert temps == pytest.approx([0.055, 0.07, 0.07])  # DINO's ViT recipe: 0.04 -> 0.07 over 30 %
    assert no_bn.get_extra_state() == {"teacher_temp": pytest.approx(0.07)}
    assert torch.isfinite(no_bn.training_loss(_views(4)))
