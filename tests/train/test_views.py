"""A method's views (its ViewPlan): global crops at the working size, smaller local crops from less of the
image, drawn in one batched pass per size, graph-capturable on the fused path."""

from __future__ import annotations

import pytest
import torch

from medssl.common.augment import PRESETS, SPECS, build_augment
from medssl.methods.base import TWO_VIEWS, ViewPlan
from medssl.train.views import draw_views, local_crop_scale, view_augments

SIZE = 32
MULTI_CROP = ViewPlan(global_crops=2, local_crops=6)


def _images(n: int, channels: int) -> torch.Tensor:
    """Images whose pixel value is its column position: a crop's range of values shows how wide it was."""
    ramp = torch.linspace(0, 1, SIZE).expand(SIZE, SIZE)
    return ramp.expand(n, channels, SIZE, SIZE).contiguous()


def test_two_views_are_the_two_view_path_of_before() -> None:
    """Two global crops and no local one: one call on the doubled batch, the same pixels for the same seed."""
    x = torch.rand(8, 3, SIZE, SIZE)
    augment, local = view_augments("generic", SIZE, 3, TWO_VIEWS)
    assert local is None
    torch.manual_seed(3)
    views = draw_views(x, TWO_VIEWS, augment, local)
    torch.manual_seed(3)
    before = build_augment("generic", SIZE, 3)(torch.cat([x, x])).chunk(2)
    assert views.local_crops == () and len(views.global_crops) == 2
    assert all(torch.equal(a, b) for a, b in zip(views.global_crops, before, strict=True))


@pytest.mark.parametrize("backend", ["fused", "kornia"])
@pytest.mark.parametrize("preset", PRESETS)
def test_local_crops_are_smaller_and_cut_from_less_of_the_image(preset: str, backend: str) -> None:
    x = _images(256, 1)
    augment, local = view_augments(preset, SIZE, 1, MULTI_CROP, backend=backend)  # type: ignore[arg-type]
    torch.manual_seed(0)
    views = draw_views(x, MULTI_CROP, augment, local)
    assert [v.shape for v in views.global_crops] == [(256, 1, SIZE, SIZE)] * 2
    assert [v.shape for v in views.local_crops] == [(256, 1, SIZE // 2, SIZE // 2)] * 6
    low, high = local_crop_scale(preset, MULTI_CROP)
    assert (low, high) == (0.05, SPECS[preset].crop_scale[0])  # the local range ends where the global begins

    def width(view: torch.Tensor) -> torch.Tensor:  # share of the image's width a crop spans
        middle = view.shape[-1] // 2  # the ramp runs along the middle row, or column after a quarter turn
        spans = [line.amax(1) - line.amin(1) for line in (view[:, 0, middle], view[:, 0, :, middle])]
        return torch.maximum(*spans)

    global_width = torch.cat([width(v) for v in views.global_crops]).median()
    local_width = torch.cat([width(v) for v in views.local_crops]).median()
    assert local_width < 0.75 * global_width
    assert float(local_width) < high**0.5


def test_multi_crop_traces_as_one_graph_without_host_sync() -> None:
    torch._dynamo.reset()
    augment, local = view_augments("histology", SIZE, 3, MULTI_CROP)

    def views(x: torch.Tensor):
        return draw_views(x, MULTI_CROP, augment, local)

    compiled = torch.compile(views, fullgraph=True, backend="eager")
    out = compiled(torch.rand(4, 3, SIZE, SIZE))
    assert len(out.global_crops) == 2 and out.local_crops[5].shape == (4, 3, SIZE // 2, SIZE // 2)


def test_a_plan_needs_a_global_crop() -> None:
    with pytest.raises(ValueError, match="global crop"):
        view_augments("generic", SIZE, 3, ViewPlan(global_crops=0))
