"""SimCLR's NT-Xent without a host sync: the same loss and gradients as lightly's, in one graph."""

from __future__ import annotations

import pytest
import torch
from lightly.loss import NTXentLoss

from medssl.methods.simclr import CapturableNTXentLoss


@pytest.mark.parametrize("batch", [2, 7, 32])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_equals_lightly_loss_and_gradients(batch: int, temperature: float) -> None:
    torch.manual_seed(batch)
    inputs = [torch.randn(batch, 16, requires_grad=True) for _ in range(2)]
    ours = CapturableNTXentLoss(temperature)(*inputs)
    ours_grads = torch.autograd.grad(ours, inputs)
    theirs = NTXentLoss(temperature)(*inputs)
    theirs_grads = torch.autograd.grad(theirs, inputs)
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_memory_bank_case_is_lightly_code() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    torch.manual_seed(1)  # the bank starts random
    loss = CapturableNTXentLoss(0.5, memory_bank_size=(32, 16))
    torch.manual_seed(1)
    reference = NTXentLoss(0.5, memory_bank_size=(32, 16))
    torch.testing.assert_close(loss(a, b), reference(a, b))


def test_traces_as_one_graph() -> None:
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(CapturableNTXentLoss(0.5))(a, b)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    torch._dynamo.reset()
    assert torch._dynamo.explain(NTXentLoss(0.5))(a, b).graph_break_count > 0  # lightly's own breaks
