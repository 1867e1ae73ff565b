"""The fused device-side augmentation: same distributions as the kornia path, and graph-capturable."""

from __future__ import annotations

import math

import kornia.augmentation as K
import pytest
import torch
from scipy.stats import ks_2samp

from medssl.common.augment import PRESETS, SPECS, build_augment
from medssl.common.fused_augment import FusedAugment, crop_boxes

SIZE = 32
DRAWS = 20_000
MAX_KS = 0.05
"""Largest Kolmogorov-Smirnov distance accepted between two samples of the same distribution (20,000 draws
each: the 0.1 % critical value is 0.019; the margin covers the known, documented pixel-level differences)."""


def _images(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Smooth, structured float images in [0.05, 0.95], one random phase per image and channel."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    phase = torch.rand(n, channels, 1, 1, generator=g) * 6
    return (0.5 + 0.35 * torch.sin(7 * xx + 3 * yy + phase) * torch.cos(4 * yy - phase)).clamp(0.05, 0.95)


def _same_distribution(a: torch.Tensor, b: torch.Tensor, limit: float = MAX_KS) -> None:
    result = ks_2samp(a.flatten().double().numpy(), b.flatten().double().numpy())
    assert result.statistic < limit, f"KS distance {result.statistic:.3f} (p = {result.pvalue:.2g})"


@pytest.mark.parametrize("scale", [(0.2, 1.0), (0.3, 1.0)])
def test_crop_boxes_match_kornia(scale: tuple[float, float]) -> None:
    torch.manual_seed(0)
    src = K.RandomResizedCrop((SIZE, SIZE), scale=scale).generate_parameters(
        torch.Size((DRAWS, 1, SIZE, SIZE))
    )
    src = src["src"]
    kornia_w, kornia_h = src[:, 1, 0] - src[:, 0, 0] + 1, src[:, 2, 1] - src[:, 1, 1] + 1
    x0, y0, w, h = crop_boxes(DRAWS, SIZE, SIZE, scale, torch.zeros(())).unbind(1)
    _same_distribution(kornia_w * kornia_h, w * h)
    _same_distribution(kornia_w / kornia_h, w / h)
    _same_distribution(src[:, 0, 0], x0)
    _same_distribution(src[:, 0, 1], y0)
    assert bool((x0 >= 0).all() and (x0 + w <= SIZE).all() and (y0 + h <= SIZE).all())


def _geometry(preset: str) -> dict[str, torch.Tensor]:
    """Crop area fraction, |rotation| (degrees) and horizontal flip of the fused path's source matrices."""
    torch.manual_seed(1)
    matrix = FusedAugment(preset, SIZE, 1).source_matrices(torch.zeros(DRAWS, 1, SIZE, SIZE))[:, :2, :2]
    area = matrix.det().abs()  # rotation, quarter turns and flips keep areas: what is left is the crop's
    first_column = matrix[:, :, 0] * matrix[:, 0, 0].sign().unsqueeze(1)  # fold flips and half turns
    angle = torch.rad2deg(torch.atan2(first_column[:, 1], first_column[:, 0])).abs()
    return {"area": area, "angle": angle, "flipped": matrix.det() < 0}


@pytest.mark.parametrize("preset", PRESETS)
def test_geometry_parameters_match_kornia(preset: str) -> None:
    spec = SPECS[preset]
    fused = _geometry(preset)
    torch.manual_seed(1)
    shape = torch.Size((DRAWS, 1, SIZE, SIZE))
    src = K.RandomResizedCrop((SIZE, SIZE), scale=spec.crop_scale).generate_parameters(shape)["src"]
    kornia_area = (src[:, 1, 0] - src[:, 0, 0] + 1) * (src[:, 2, 1] - src[:, 1, 1] + 1) / SIZE**2
    _same_distribution(kornia_area, fused["area"])
    if spec.rotation_p > 0:
        rotation = K.RandomRotation(spec.rotation, p=spec.rotation_p)
        degrees = rotation.generate_parameters(shape)["degrees"].abs()
        applied = rotation.__batch_prob_generator__(shape, spec.rotation_p, 1.0, False)
        _same_distribution(torch.where(applied.bool(), degrees, 0.0), fused["angle"], limit=0.02)
    else:
        assert float(fused["angle"].max()) < 1e-3
    flips = spec.hflip_p * (1 - spec.vflip_p) + spec.vflip_p * (1 - spec.hflip_p)
    assert abs(float(fused["flipped"].float().mean()) - flips) < 0.02


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", PRESETS)
def test_output_statistics_match_kornia(preset: str, channels: int) -> None:
    """Per-image mean, contrast and colourfulness of both paths' outputs follow the same distributions."""
    x = _images(4000, channels)
    torch.manual_seed(2)
    kornia_out = build_augment(preset, SIZE, channels, backend="kornia")(x)  # type: ignore[arg-type]
    torch.manual_seed(2)
    fused_out = build_augment(preset, SIZE, channels)(x)  # type: ignore[arg-type]
    assert isinstance(build_augment(preset, SIZE, channels), FusedAugment)  # type: ignore[arg-type]
    _same_distribution(kornia_out.mean((1, 2, 3)), fused_out.mean((1, 2, 3)), limit=0.06)
    _same_distribution(kornia_out.std((1, 2, 3)), fused_out.std((1, 2, 3)), limit=0.06)
    colour = lambda t: (t.max(1).values - t.min(1).values).mean((1, 2))  # noqa: E731
    _same_distribution(colour(kornia_out), colour(fused_out), limit=0.06)


def _probe(kind: str) -> torch.Tensor:
    """Images on which one step's output reveals its parameter: flat gray (brightness, gamma), an impulse (blur)."""
    if kind == "blur":
        probe = torch.zeros(DRAWS // 4, 1, SIZE, SIZE)
        probe[:, :, SIZE // 2, SIZE // 2] = 1.0
        return probe
    return torch.full((DRAWS // 4, 1, SIZE, SIZE), 0.5)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("kind", ["colour", "gamma", "blur"])
def test_intensity_steps_match_kornia(preset: str, kind: str) -> None:
    """Each intensity step alone, kornia's module vs the fused step, on a probe that shows its parameter."""
    spec, fused = SPECS[preset], FusedAugment(preset, SIZE, 1)
    steps = {step.__class__.__name__: step for step in build_augment(preset, SIZE, 1, backend="kornia").steps}  # type: ignore[arg-type, union-attr]
    name = {"colour": "ColorJitter", "gamma": "RandomGamma", "blur": "RandomGaussianBlur"}[kind]
    probe = _probe(kind)
    torch.manual_seed(3)
    ours = getattr(fused, kind)(probe)
    if name not in steps:
        assert torch.equal(ours, probe) and getattr(spec, f"{kind}_p", 0.0) == 0
        return
    reference = steps[name](probe)
    centre = (slice(None), 0, SIZE // 2, SIZE // 2)
    _same_distribution(reference[centre], ours[centre], limit=0.03)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", PRESETS)
def test_traces_as_one_graph_without_host_sync(preset: str, channels: int) -> None:
    """fullgraph=True fails on any host read (.item(), .tolist(), a value-dependent branch) or a shape that
    depends on the data (boolean indexing, nonzero): the fused path has none, kornia's path does."""
    torch._dynamo.reset()
    x = _images(8, channels)
    compiled = torch.compile(build_augment(preset, SIZE, channels), fullgraph=True, backend="eager")  # type: ignore[arg-type]
    assert compiled(x).shape == x.shape
    if preset == "xray" and channels == 1:
        torch._dynamo.reset()
        reference = build_augment(preset, SIZE, channels, backend="kornia")  # type: ignore[arg-type]
        with pytest.raises(Exception, match=r"data-dependent|graph break|Unsupported"):
            torch.compile(reference, fullgraph=True, backend="eager")(x)


def test_quarter_turns_are_exact_on_the_whole_image() -> None:
    """With the crop forced to the whole image, histology's geometry is exactly one of the 8 symmetries."""
    image = torch.rand(1, 1, SIZE, SIZE).expand(64, -1, -1, -1).contiguous()
    augment = FusedAugment("histology", SIZE, 1)
    augment.spec = type(augment.spec)(**{**augment.spec.__dict__, "crop_scale": (1.0, 1.0)})
    torch.manual_seed(4)
    out = augment.geometry(image)
    symmetries = [torch.rot90(image[0], k, dims=(-2, -1)) for k in range(4)]
    symmetries += [s.flip(-1) for s in symmetries]
    found = set()
    for view in out:
        errors = [float((view - s).abs().max()) for s in symmetries]
        assert min(errors) < 1e-5
        found.add(errors.index(min(errors)))
    assert found == set(range(8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("preset", PRESETS)
def test_no_host_sync_on_gpu(preset: str) -> None:
    x = _images(64, 3).cuda()
    augment = build_augment(preset, SIZE, 3)  # type: ignore[arg-type]
    augment(x)  # kernels and cuBLAS handles load here, outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        y = augment(torch.cat([x, x]))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert y.device == x.device and y.shape == (128, 3, SIZE, SIZE)
    assert math.isfinite(float(y.mean()))
