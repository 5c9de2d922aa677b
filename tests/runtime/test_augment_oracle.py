"""The augmentations against an outside oracle: kornia (the `dev` extra) and F.interpolate.

trick's operations are driven with given parameters through `Augmenter.apply(x, params)`, and
the same parameters are handed to kornia. docs/augmentation.md says whose definition each
operation follows: torchvision's (which cannot be installed next to this CPU torch). kornia
computes the same things under other names, and the comparisons below pick the kornia
function whose definition is torchvision's:

    trick (torchvision)                         kornia
    brightness b: b·x, clamped                  enhance.adjust_contrast(x, b) (a plain multiply;
                                                kornia's adjust_brightness adds b instead)
    contrast c: blend with the mean gray        enhance.adjust_contrast_with_mean_subtraction
    saturation s: blend with the pixel's gray   enhance.adjust_saturation_with_gray_subtraction
                                                (kornia's adjust_saturation scales HSV's S instead)
    hue h turns: HSV hue + h                    enhance.adjust_hue(x, 2π·h) (radians)
    resize: bilinear, half-pixel centres        geometry.transform.resize (F.interpolate, with
                                                align_corners=False); when shrinking, torchvision
                                                and F.interpolate(antialias=True) filter with a
                                                triangle of the scale's width, kornia blurs with a
                                                Gaussian first: only close, not equal
    flips, crops, affine, perspective           geometry.transform.hflip, crop_by_indices,
                                                warp_affine, warp_perspective (align_corners=True:
                                                pixel i centred at i, zeros outside, as in trick)

Tolerances: 1e-6 where both sides do the same float32 arithmetic, 1e-5 where they compute the
same formula in a different order (the fused warp's grid, HSV), 1e-4 for the perspective warp
(two solutions of the same 8x8 system).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trick.compiler import ir
from trick.dsl.diagnostics import Span
from trick.runtime.augment import Augmenter

kornia = pytest.importorskip("kornia")
KT = kornia.geometry.transform

HERE = Span.point("<oracle>", 1, 1)
UNIT = (0.0, 1.0)


def step(kind: str, **args) -> ir.Step:
    return ir.Step(kind, args, HERE)


def apply(steps, x, params, clamp=None):
    return Augmenter(tuple(steps), clamp=clamp).apply(x, params)


def rand(n=8, c=3, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def smooth(n=8, c=3, h=32, w=32, seed=0):
    """Images with little energy at high frequencies (so that two antialiasing filters agree)."""
    coarse = torch.rand(n, c, h // 4, w // 4, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def uniform(n, low, high, seed):
    return low + (high - low) * torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---- flips and crops -------------------------------------------------------------------------------------


def test_hflip_is_kornias_hflip():
    x = rand()
    flip = torch.tensor([True, False] * 4)
    out = apply([step("hflip", p=0.5)], x, [{"flip": flip}])
    ref = torch.where(flip[:, None, None, None], KT.hflip(x), x)
    assert torch.equal(out, ref)


def test_crop_with_padding_is_kornias_crop_of_the_zero_padded_image():
    x = rand(h=12, w=14)
    size, pad = 10, 3
    top = torch.tensor([0, 1, 2, 3, 4, 5, 6, 8])
    left = torch.tensor([10, 0, 7, 3, 1, 9, 5, 2])
    out = apply([step("crop", size=size, pad=pad)], x, [{"top": top, "left": left}])
    padded = F.pad(x, (pad, pad, pad, pad))
    x0, y0 = left.float(), top.float()
    x1, y1 = x0 + size - 1, y0 + size - 1
    boxes = torch.stack([torch.stack([x0, y0], 1), torch.stack([x1, y0], 1), torch.stack([x1, y1], 1), torch.stack([x0, y1], 1)], 1)
    ref = KT.crop_by_indices(padded, boxes)
    assert out.shape == ref.shape == (8, 3, size, size)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


# ---- resize ------------------------------------------------------------------------------------------------


def scale_params(short, u_top=0.0, u_left=0.0):
    n = len(short)
    return {"short": torch.tensor(short), "u_top": torch.full((n,), float(u_top), dtype=torch.float64), "u_left": torch.full((n,), float(u_left), dtype=torch.float64)}


@pytest.mark.parametrize("h, w, short", [(16, 16, 24), (12, 18, 13), (18, 12, 17), (16, 20, 16)])
def test_an_enlarging_scale_is_kornias_resize_of_the_short_side(h, w, short):
    x = rand(n=4, h=h, w=w)
    size = min(h, w)
    out = apply([step("scale", size=size, short_side=[size, short])], x, [scale_params([short] * 4)])
    resized = KT.resize(x, short, side="short", antialias=True)  # enlarging: F.interpolate, align_corners=False
    assert min(resized.shape[-2:]) == short and max(resized.shape[-2:]) == int(short * max(h, w) / min(h, w))
    torch.testing.assert_close(out, resized[..., :size, :size], atol=1e-5, rtol=0)
    far = apply([step("scale", size=size, short_side=[size, short])], x, [scale_params([short] * 4, 0.999, 0.999)])
    torch.testing.assert_close(far, resized[..., -size:, -size:], atol=1e-5, rtol=0)  # the far corner: the clamped border


@pytest.mark.parametrize("h, w, short", [(32, 32, 16), (32, 40, 20), (30, 24, 13)])
def test_a_shrinking_scale_is_f_interpolate_with_antialias_and_close_to_kornias(h, w, short):
    x = smooth(n=4, h=h, w=w)
    size = 12
    out = apply([step("scale", size=size, short_side=[size, short])], x, [scale_params([short] * 4)])
    long_side = int(short * max(h, w) / min(h, w))
    target = (short, long_side) if h <= w else (long_side, short)
    ref = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(out, ref[..., :size, :size], atol=1e-6, rtol=0)
    blurred = KT.resize(x, target, antialias=True)  # a Gaussian prefilter, not torchvision's triangle
    assert float((out - blurred[..., :size, :size]).abs().mean()) < 0.02
    no_filter = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    assert float((out - no_filter[..., :size, :size]).abs().max()) > 1e-3  # the antialiasing is there


def test_a_mixed_batch_of_short_sides_resizes_each_sample_at_its_own():
    x = rand(n=6, h=20, w=20)
    short = [12, 20, 28, 12, 16, 28]
    out = apply([step("scale", size=12, short_side=[12, 28])], x, [scale_params(short, 0.5, 0.25)])
    for i, s in enumerate(short):
        r = F.interpolate(x[i : i + 1], size=(s, s), mode="bilinear", align_corners=False, antialias=True)[0] if s != 20 else x[i]
        top, left = int(0.5 * (s - 12 + 1)), int(0.25 * (s - 12 + 1))
        torch.testing.assert_close(out[i], r[:, top : top + 12, left : left + 12], atol=1e-6, rtol=0)


# ---- colour --------------------------------------------------------------------------------------------------


def color(**ranges):
    args = {"brightness": (1.0, 1.0), "contrast": (1.0, 1.0), "saturation": (1.0, 1.0), "hue": (0.0, 0.0)}
    args.update(ranges)
    return step("color", **args)


def color_params(n, **given):
    p = {"brightness": torch.ones(n, dtype=torch.float64), "contrast": torch.ones(n, dtype=torch.float64), "saturation": torch.ones(n, dtype=torch.float64), "hue": torch.zeros(n, dtype=torch.float64)}
    p.update(given)
    return p


@pytest.mark.parametrize(
    "factor, oracle, low, high",
    [
        ("brightness", lambda x, f: kornia.enhance.adjust_contrast(x, f), 0.2, 1.8),
        ("contrast", lambda x, f: kornia.enhance.adjust_contrast_with_mean_subtraction(x, f), 0.2, 1.8),
        ("saturation", lambda x, f: kornia.enhance.adjust_saturation_with_gray_subtraction(x, f), 0.0, 2.0),
        ("hue", lambda x, f: kornia.enhance.adjust_hue(x, 2 * math.pi * f), -0.5, 0.5),
    ],
)
def test_each_colour_factor_on_unit_data_is_kornias(factor, oracle, low, high):
    x = rand(n=16)
    f = uniform(16, low, high, seed=1)
    out = apply([color(**{factor: (low, high)})], x, [color_params(16, **{factor: f})], clamp=UNIT)
    ref = oracle(x, f.float())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 + 1e-6


def test_brightness_and_contrast_of_one_channel_images_are_kornias():
    x = rand(n=8, c=1)
    b, c = uniform(8, 0.5, 1.5, 2), uniform(8, 0.3, 1.7, 3)
    out = apply([color(brightness=(0.5, 1.5), contrast=(0.3, 1.7))], x, [color_params(8, brightness=b, contrast=c)], clamp=UNIT)
    ref = kornia.enhance.adjust_contrast_with_mean_subtraction(kornia.enhance.adjust_contrast(x, b.float()), c.float())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_the_whole_colour_step_is_kornias_four_functions_in_order():
    x = rand(n=16, seed=5)
    p = color_params(16, brightness=uniform(16, 0.5, 1.5, 1), contrast=uniform(16, 0.5, 1.5, 2), saturation=uniform(16, 0.0, 2.0, 3), hue=uniform(16, -0.5, 0.5, 4))
    out = apply([color(brightness=(0.5, 1.5), contrast=(0.5, 1.5), saturation=(0.0, 2.0), hue=(-0.5, 0.5))], x, [p], clamp=UNIT)
    e = kornia.enhance
    ref = e.adjust_contrast(x, p["brightness"].float())
    ref = e.adjust_contrast_with_mean_subtraction(ref, p["contrast"].float())
    ref = e.adjust_saturation_with_gray_subtraction(ref, p["saturation"].float())
    ref = e.adjust_hue(ref, 2 * math.pi * p["hue"].float())
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)


def test_without_clamping_brightness_is_kornias_unclipped_multiply():
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 50 + 100  # raw data not in [0, 1]
    b = uniform(8, 0.5, 1.5, 1)
    out = apply([color(brightness=(0.5, 1.5))], x, [color_params(8, brightness=b)])
    torch.testing.assert_close(out, kornia.enhance.adjust_contrast(x, b.float(), clip_output=False), atol=1e-4, rtol=1e-6)


# ---- affine and perspective ----------------------------------------------------------------------------------------


def affine_params(angle, dx, dy, zoom, shear):
    as64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return {"angle": as64(angle), "dx": as64(dx), "dy": as64(dy), "zoom": as64(zoom), "shear": as64(shear)}


def test_rotation_is_kornias_rotate_about_the_centre():
    x = rand(n=4, h=15, w=21)
    angle = [30.0, -45.0, 10.0, 90.0]
    out = apply([step("affine", rotate=(-90.0, 90.0), translate=0.0, scale=(1.0, 1.0), shear=(0.0, 0.0))], x, [affine_params(angle, [0.0] * 4, [0.0] * 4, [1.0] * 4, [0.0] * 4)])
    ref = KT.rotate(x, torch.tensor(angle))  # centre ((W-1)/2, (H-1)/2), counter-clockwise, align_corners=True
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_affine_is_kornias_warp_affine_of_the_same_forward_map():
    n, h, w = 6, 14, 18
    x = rand(n=n, h=h, w=w)
    rng = np.random.default_rng(0)
    angle, shear = rng.uniform(-40, 40, n), rng.uniform(-20, 20, n)
    dx, dy, zoom = rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), rng.uniform(0.7, 1.4, n)
    out = apply([step("affine", rotate=(-40.0, 40.0), translate=0.2, scale=(0.7, 1.4), shear=(-20.0, 20.0))], x, [affine_params(angle, dx, dy, zoom, shear)])
    centre = torch.tensor([[(w - 1) / 2, (h - 1) / 2]] * n, dtype=torch.float64)
    rotate = KT.get_rotation_matrix2d(centre, torch.tensor(angle), torch.tensor(zoom)[:, None].expand(n, 2))  # c + R·Z·(p - c)
    rotate = torch.cat([rotate, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(n, 1, 3)], 1)
    sheared = KT.get_shear_matrix2d(centre, sx=-torch.tensor(np.deg2rad(shear)))  # kornia's x_out = x - tan(sx)·(y - cy)
    forward = rotate @ sheared
    forward[:, 0, 2] += torch.tensor(dx)
    forward[:, 1, 2] += torch.tensor(dy)
    ref = KT.warp_affine(x, forward[:, :2].float(), (h, w), align_corners=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_the_perspective_warp_is_kornias_warp_perspective():
    n, h, w, d = 5, 12, 16, 0.6
    x = rand(n=n, h=h, w=w)
    u = torch.rand(n, 4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = apply([step("warp", distortion=d, p=1.0)], x, [{"warp": torch.ones(n, dtype=torch.bool), "u": u}])
    corners = torch.tensor([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]], dtype=torch.float64)
    inward = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype=torch.float64)
    moved = corners + d * u * torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64) * inward
    forward = KT.get_perspective_transform(corners.expand(n, 4, 2), moved)  # what was at a corner lands on the moved corner
    ref = KT.warp_perspective(x, forward.float(), (h, w), align_corners=True)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
