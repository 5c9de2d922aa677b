"""The augmentation engine against direct per-sample references.

Each reference below is written independently of the engine: it takes one sample and the
parameters the engine drew for it, and applies the operation the plain way (slicing, torch.flip,
F.interpolate, one-image affine_grid/grid_sample, the colour formulas pixel by pixel, colorsys
for the hue). tests/runtime/test_augment_oracle.py compares the operations with kornia's.
"""

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F

import trick
from trick.compiler import ir
from trick.dsl.diagnostics import Span
from trick.runtime.augment import Augmenter
from trick.runtime.geometry import sampling_grid
from trick.runtime.tta import tta_logits, tta_views

HERE = Span.point("<test>", 1, 1)
LUMA = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)


def plan_of(augment: str = "", input: str = "[3, 16, 16]", source: str = "synthetic_images size=16", evaluate: str = ""):
    """The plan of a small spec with these augment (and evaluate) clauses, as the compiler resolves them."""
    evaluate_block = f"evaluate {{\n{evaluate}\n}}\n" if evaluate else ""
    augment_block = f"augment {{\n{augment}\n}}\n" if augment else ""
    classes = 10 if source.startswith(("digits", "mnist1d")) else 4
    model = f"model {{\n    input {input}\n    flatten\n    dense {classes}\n}}\n"
    text = f"spec t\ndata {{ source {source} }}\n{augment_block}{model}{evaluate_block}"
    return trick.compile(text).plan


def steps_of(augment: str, **kw) -> tuple[ir.Step, ...]:
    return plan_of(augment, **kw).augment


def step(kind: str, **args) -> ir.Step:
    return ir.Step(kind, args, HERE)


def run(steps, x, seed=0, fuse=True):
    """(output, the drawn parameters) of an Augmenter on x."""
    aug = Augmenter(steps, fuse=fuse)
    params = aug.draw(x.shape, torch.Generator().manual_seed(seed))
    return aug.apply(x, params), params


def images(n=6, c=3, h=16, w=16, seed=1):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# ---- sequences ---------------------------------------------------------------------------------------


def test_shift_moves_each_sequence_by_its_own_offset_with_zero_fill():
    x = torch.randn(64, 2, 20)
    out, (p,) = run(steps_of("shift 4", input="[1, 40]", source="mnist1d"), x)
    for i in range(len(x)):
        s = int(p["s"][i])
        ref = torch.zeros_like(x[i])
        if s >= 0:
            ref[:, s:] = x[i, :, : 20 - s]
        else:
            ref[:, :s] = x[i, :, -s:]
        assert torch.equal(out[i], ref)
    assert set(p["s"].tolist()) == set(range(-4, 5))


def test_flip_reverses_the_chosen_sequences():
    x = torch.randn(64, 2, 20)
    out, (p,) = run(steps_of("flip p=0.5", input="[1, 40]", source="mnist1d"), x)
    for i in range(len(x)):
        assert torch.equal(out[i], x[i].flip(-1) if p["flip"][i] else x[i])


def test_shift_and_flip_fuse_into_one_exact_gather():
    x = torch.randn(64, 1, 40)
    steps = (step("flip", p=0.5), step("shift", max=5), step("flip", p=0.5))
    fused, params = run(steps, x)
    unfused, _ = run(steps, x, fuse=False)
    assert [indices for _, indices in Augmenter(steps).stages] == [[0, 1, 2]]
    assert torch.equal(fused, unfused)
    for i in range(len(x)):
        ref = x[i].flip(-1) if params[0]["flip"][i] else x[i]
        s = int(params[1]["s"][i])
        ref = torch.roll(ref, s, -1)
        if s > 0:
            ref[:, :s] = 0
        elif s < 0:
            ref[:, s:] = 0
        ref = ref.flip(-1) if params[2]["flip"][i] else ref
        assert torch.equal(fused[i], ref)


def test_noise_is_gaussian_and_drawn_from_a_seed_of_the_data_generator():
    x = torch.zeros(200, 1, 500)
    out, (p,) = run(steps_of("noise std=0.3", input="[1, 40]", source="mnist1d"), x)
    ref = 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(p["seed"]))
    assert torch.equal(out, ref)
    assert abs(float(out.mean())) < 0.003 and abs(float(out.std()) - 0.3) < 0.003


def test_noise_works_on_vectors():
    x = torch.zeros(32, 64)
    out = Augmenter(steps_of("noise 0.1", input="[64]", source="digits"))(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and float(out.std()) > 0.05


# ---- images: each operation against its per-sample reference ------------------------------------------


def test_hflip_mirrors_the_chosen_images_exactly():
    x = images()
    out, (p,) = run(steps_of("hflip p=0.5"), x)
    for i in range(len(x)):
        assert torch.equal(out[i], x[i].flip(-1) if p["flip"][i] else x[i])


def test_hflip_rate_is_within_a_binomial_bound():
    n, p = 20000, 0.3
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(n, 1, 1, 4).contiguous()
    out = Augmenter(steps_of(f"hflip p={p}"))(x, torch.Generator().manual_seed(3))
    flipped = int((out[:, 0, 0, 0] == 3).sum())
    assert int((out[:, 0, 0, 0] == 0).sum()) + flipped == n
    assert abs(flipped - n * p) < 5 * math.sqrt(n * p * (1 - p))


def test_crop_is_a_window_of_the_zero_padded_image_exactly():
    x = images(n=40, h=12, w=16)
    out, (p,) = run((step("crop", size=10, pad=3),), x)
    assert out.shape == (40, 3, 10, 10)
    for i in range(len(x)):
        padded = F.pad(x[i], (3, 3, 3, 3))
        top, left = int(p["top"][i]), int(p["left"][i])
        assert torch.equal(out[i], padded[:, top : top + 10, left : left + 10])


def test_crop_offsets_are_uniform_over_every_position():
    n = 25000
    _, (p,) = run(steps_of("crop 16 pad=2"), torch.zeros(n, 3, 16, 16))
    counts = torch.bincount(p["top"] * 5 + p["left"], minlength=25).double()
    assert len(counts) == 25
    expected = n / 25
    assert float((counts - expected).abs().max()) < 5 * math.sqrt(expected)


def reference_scale(image, short, u_top, u_left, size):
    """torchvision's Resize(short) (its size arithmetic; bilinear, align_corners=False,
    antialias=True) and a crop at the drawn corner, on one image."""
    c, h, w = image.shape
    long_side = int(short * max(h, w) / min(h, w))  # torchvision truncates
    hr, wr = (short, long_side) if h <= w else (long_side, short)
    resized = image if (hr, wr) == (h, w) else F.interpolate(image[None], size=(hr, wr), mode="bilinear", align_corners=False, antialias=True)[0]
    top = min(int(u_top * (hr - size + 1)), hr - size)
    left = min(int(u_left * (wr - size + 1)), wr - size)
    return resized[:, top : top + size, left : left + size]


@pytest.mark.parametrize("h, w", [(12, 16), (12, 18), (17, 12)])
def test_scale_that_enlarges_resizes_like_torchvision_and_crops(h, w):
    x = images(n=30, h=h, w=w)
    short = min(h, w)
    out, (p,) = run((step("scale", size=short, short_side=[short, short + 8]),), x)
    assert out.shape == (30, 3, short, short)
    for i in range(len(x)):
        ref = reference_scale(x[i], int(p["short"][i]), float(p["u_top"][i]), float(p["u_left"][i]), short)
        torch.testing.assert_close(out[i], ref, atol=2e-5, rtol=0)


def test_scale_that_shrinks_is_antialiased_like_torchvision(monkeypatch):
    x = images(n=30, h=24, w=30)
    calls = []
    original = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(k.get("antialias")) or original(*a, **k))
    out, (p,) = run((step("scale", size=12, short_side=[12, 28]),), x)
    assert out.shape == (30, 3, 12, 12)
    assert calls and all(calls) and len(calls) <= len(set(p["short"].tolist()))  # one call per short side (none for L = 24)
    monkeypatch.setattr(F, "interpolate", original)
    for i in range(len(x)):
        ref = reference_scale(x[i], int(p["short"][i]), float(p["u_top"][i]), float(p["u_left"][i]), 12)
        torch.testing.assert_close(out[i], ref, atol=1e-6, rtol=0)


def test_the_long_side_is_truncated_as_torchvision_does():
    _, (p,) = run((step("scale", size=12, short_side=[13, 13]),), images(n=2, h=12, w=18))
    hr, wr, _, _ = Augmenter((step("scale", size=12, short_side=[13, 13]),)).ops[0].offsets(p, (12, 18))
    assert (hr.tolist(), wr.tolist()) == ([13.0, 13.0], [19.0, 19.0])  # 13 * 18 / 12 = 19.5: torchvision's int() gives 19


def test_a_fused_scale_keeps_the_zeros_of_a_padded_crop_on_either_side():
    x = images(n=32) + 3.0  # no zeros inside the images
    for spec in ("crop 16 pad=3\nscale 16 short_side=16..24", "scale 16 short_side=16..24\ncrop 16 pad=3"):
        steps = steps_of(spec)
        fused, _ = run(steps, x)
        unfused, _ = run(steps, x, fuse=False)
        assert [len(indices) for _, indices in Augmenter(steps).stages] == [2]
        torch.testing.assert_close(fused, unfused, atol=2e-5, rtol=0)


def test_scale_short_sides_cover_the_range_uniformly():
    n = 9000
    _, (p,) = run(steps_of("scale 16 short_side=16..24"), torch.zeros(n, 3, 16, 16))
    counts = torch.bincount(p["short"] - 16).double()
    assert len(counts) == 9
    assert float((counts - n / 9).abs().max()) < 5 * math.sqrt(n / 9)


def reference_affine(image, angle, dx, dy, zoom, shear):
    """One image through F.affine_grid/grid_sample, with theta built from the forward map."""
    c, h, w = image.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    t, s = math.radians(angle), math.radians(shear)
    rotate = torch.tensor([[math.cos(t), math.sin(t), 0], [-math.sin(t), math.cos(t), 0], [0, 0, 1]], dtype=torch.float64)
    sh = torch.tensor([[1, math.tan(s), 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    z = torch.diag(torch.tensor([zoom, zoom, 1.0], dtype=torch.float64))
    to_centre = torch.tensor([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=torch.float64)
    back = torch.tensor([[1, 0, cx + dx], [0, 1, cy + dy], [0, 0, 1]], dtype=torch.float64)
    forward = back @ rotate @ sh @ z @ to_centre  # input pixel -> output pixel
    # pixel i of n has its centre at (2i + 1)/n - 1 in grid_sample's coordinates
    normalize = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]], dtype=torch.float64)
    theta = (normalize @ torch.linalg.inv(forward) @ torch.linalg.inv(normalize))[:2]
    grid = F.affine_grid(theta[None].float(), [1, c, h, w], align_corners=False)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def test_affine_matches_a_per_sample_affine_grid():
    x = images(n=24, h=12, w=20)
    steps = (step("affine", rotate=[-40.0, 40.0], translate=0.2, scale=[0.7, 1.4], shear=[-20.0, 20.0]),)
    out, (p,) = run(steps, x)
    for i in range(len(x)):
        ref = reference_affine(x[i], *(float(p[k][i]) for k in ("angle", "dx", "dy", "zoom", "shear")))
        torch.testing.assert_close(out[i], ref, atol=2e-5, rtol=0)


def test_affine_rotates_counter_clockwise_on_screen():
    x = images(n=4, h=15, w=15)
    out, _ = run(steps_of("affine rotate=90..90", input="[3, 15, 15]", source="synthetic_images size=15"), x)
    assert torch.equal(out, torch.rot90(x, 1, dims=(2, 3)))  # a quarter turn is an exact pixel copy


def test_affine_parameters_are_uniform_in_their_ranges():
    n = 20000
    _, (p,) = run(steps_of("affine rotate=15 translate=0.1 scale=0.8..1.2 shear=-5..10"), torch.zeros(n, 3, 16, 16))
    for key, low, high in (("angle", -15, 15), ("dx", -1.6, 1.6), ("dy", -1.6, 1.6), ("zoom", 0.8, 1.2), ("shear", -5, 10)):
        v = p[key]
        assert low <= float(v.min()) and float(v.max()) <= high
        sd = (high - low) / math.sqrt(12)
        assert abs(float(v.mean()) - (low + high) / 2) < 5 * sd / math.sqrt(n)
        assert abs(float(v.std()) - sd) < 0.02 * sd


def reference_color(image, b, c, s, h, clamp=False):
    """The colour formulas pixel by pixel, in float64, clamped into [0, 1] after each of the
    first three with `clamp`; the hue by colorsys (RGB -> HSV, shift, HSV -> RGB)."""
    bound = (lambda t: t.clamp(0, 1)) if clamp else (lambda t: t)
    x = bound(image.double() * b)
    mean_gray = (LUMA[:, None, None] * x).sum(0).mean()
    x = bound(c * x + (1 - c) * mean_gray)
    gray = (LUMA[:, None, None] * x).sum(0)
    x = bound(s * x + (1 - s) * gray)
    if h != 0:
        pixels = [colorsys.hsv_to_rgb((hh + h) % 1.0, ss, vv) for hh, ss, vv in (colorsys.rgb_to_hsv(*v) for v in x.reshape(3, -1).T.tolist())]
        x = torch.tensor(pixels, dtype=torch.float64).T.reshape(image.shape)
    return x.float()


def test_color_matches_its_formulas():
    x = images(n=20).abs()  # positive, not in [0, 1]: nothing is clamped
    out, (p,) = run(steps_of("color brightness=0.5..1.5 contrast=0.5..1.5 saturation=0..2 hue=-0.5..0.5"), x)
    for i in range(len(x)):
        ref = reference_color(x[i], *(float(p[k][i]) for k in ("brightness", "contrast", "saturation", "hue")))
        torch.testing.assert_close(out[i], ref, atol=2e-5, rtol=1e-5)


def test_color_on_data_in_the_unit_interval_clamps_after_each_factor():
    x = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    steps = steps_of("color brightness=0.5..1.8 contrast=0.5..1.8 saturation=0..2 hue=-0.5..0.5")
    aug = Augmenter(steps, clamp=(0.0, 1.0))
    p = aug.draw(x.shape, torch.Generator().manual_seed(0))
    out = aug.apply(x, p)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 + 1e-6
    for i in range(len(x)):
        ref = reference_color(x[i], *(float(p[0][k][i]) for k in ("brightness", "contrast", "saturation", "hue")), clamp=True)
        torch.testing.assert_close(out[i], ref, atol=2e-5, rtol=0)


def test_hue_turns_red_into_green_at_a_third_of_a_turn():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(4, 3, 2, 2).contiguous()
    out = Augmenter(steps_of("color hue=0.3333333333..0.3333333333"))(red, torch.Generator())
    torch.testing.assert_close(out, red.roll(1, dims=1), atol=1e-6, rtol=0)


def test_hue_keeps_each_pixels_largest_and_smallest_value():
    x = images(n=16) * 3  # any sign and size: HSV keeps max and min, only the hue turns
    out, _ = run(steps_of("color hue=-0.5..0.5"), x)
    torch.testing.assert_close(out.amax(1), x.amax(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.amin(1), x.amin(1), atol=1e-5, rtol=0)


def test_color_on_one_channel_images_uses_brightness_and_contrast():
    x = images(n=10, c=1, h=8, w=8)
    out, (p,) = run(steps_of("color brightness=0.5..1.5 contrast=0.2..1.8", input="[1, 8, 8]", source="digits"), x)
    for i in range(len(x)):
        y = x[i].double() * float(p["brightness"][i])
        y = float(p["contrast"][i]) * y + (1 - float(p["contrast"][i])) * y.mean()
        torch.testing.assert_close(out[i], y.float(), atol=1e-5, rtol=1e-5)


def test_color_factors_are_uniform_in_their_ranges():
    n = 20000
    _, (p,) = run(steps_of("color brightness=0.5..1.5 hue=-0.1..0.1"), torch.zeros(n, 3, 2, 2))
    for key, low, high in (("brightness", 0.5, 1.5), ("contrast", 1, 1), ("saturation", 1, 1), ("hue", -0.1, 0.1)):
        v = p[key]
        assert low <= float(v.min()) and float(v.max()) <= high
        assert abs(float(v.mean()) - (low + high) / 2) <= 5 * (high - low) / math.sqrt(12 * n)


def test_image_noise_is_additive_gaussian():
    x = images(n=64)
    out, (p,) = run(steps_of("noise std=0.5"), x)
    eps = (out - x) / 0.5
    assert abs(float(eps.mean())) < 0.02 and abs(float(eps.std()) - 1) < 0.02


# ---- fusion ------------------------------------------------------------------------------------------------


def test_flips_crops_and_quarter_turns_fuse_exactly():
    x = images(n=64)
    steps = steps_of("hflip p=0.5\ncrop 16 pad=3\nscale 16 short_side=16..16\naffine rotate=90..90")
    fused, p = run(steps, x)
    unfused, _ = run(steps, x, fuse=False)
    assert [len(indices) for _, indices in Augmenter(steps).stages] == [4]
    assert torch.equal(fused, unfused)
    for i in range(len(x)):
        ref = x[i].flip(-1) if p[0]["flip"][i] else x[i]
        top, left = int(p[1]["top"][i]), int(p[1]["left"][i])
        ref = F.pad(ref, (3, 3, 3, 3))[:, top : top + 16, left : left + 16]
        assert torch.equal(fused[i], torch.rot90(ref, 1, dims=(1, 2)))


def test_the_fused_warp_keeps_the_borders_of_intermediate_images():
    """A crop of a crop: pixels of the first window's surroundings must not show through."""
    x = images(n=64, h=16, w=20) + 5.0  # no zeros inside the image
    steps = (step("crop", size=10, pad=0), step("hflip", p=0.5), step("crop", size=12, pad=3), step("hflip", p=0.5))
    fused, p = run(steps, x)
    unfused, _ = run(steps, x, fuse=False)
    assert torch.equal(fused, unfused)
    assert float((fused == 0).float().mean()) > 0.05  # the second crop's padding is there


def test_one_grid_sample_per_run_of_geometric_operations(monkeypatch):
    calls = []
    original = F.grid_sample
    monkeypatch.setattr(F, "grid_sample", lambda *a, **k: calls.append(k.get("mode")) or original(*a, **k))
    e2 = "hflip\ncrop 16 pad=2\nscale 16 short_side=16..24\ncolor brightness=0.5..1.5 saturation=0.5..1.5\naffine rotate=15 shear=5"
    run(steps_of(e2), images(n=8))
    assert calls == ["bilinear"]  # a colour change that is linear (no contrast, no hue, no clamp) commutes with the warps
    calls.clear()
    run(steps_of(e2), images(n=8), fuse=False)
    assert len(calls) == 4
    calls.clear()
    for barrier in ("contrast=0.5..1.5 ", "hue=-0.1..0.1 "):  # contrast needs the image's mean, HSV is not linear
        run(steps_of(e2.replace("saturation=", barrier + "saturation=")), images(n=8))
        assert calls == ["bilinear", "bilinear"]
        calls.clear()
    Augmenter(steps_of(e2), clamp=(0.0, 1.0))(images(n=8).sigmoid(), torch.Generator())
    assert calls == ["bilinear", "bilinear"]  # clamping is not linear either
    calls.clear()
    run(steps_of("hflip\ncrop 16 pad=2"), images(n=8))
    assert calls == ["nearest"]


def test_a_linear_colour_change_between_warps_is_applied_after_the_fused_warp():
    x = images(n=32)
    steps = steps_of("hflip\ncrop 16 pad=3\ncolor brightness=0.5..1.5 saturation=0..2\naffine rotate=90..90")
    fused, p = run(steps, x)
    unfused, _ = run(steps, x, fuse=False)
    assert [kind for kind, _ in Augmenter(steps).stages] == ["image"]
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)
    with_contrast = steps_of("hflip\ncrop 16 pad=3\ncolor contrast=0.5..1.5\naffine rotate=90..90")
    assert [indices for _, indices in Augmenter(with_contrast).stages] == [[0, 1, 2], [3]]
    torch.testing.assert_close(run(with_contrast, x)[0], run(with_contrast, x, fuse=False)[0], atol=1e-5, rtol=1e-5)


def test_fused_bilinear_warp_equals_crop_then_affine_inside_the_window():
    x = images(n=32)
    steps = steps_of("crop 16 pad=2\naffine rotate=20 translate=0.1 scale=0.8..1.2")
    fused, p = run(steps, x)
    unfused, _ = run(steps, x, fuse=False)
    ones, _ = run(steps, torch.ones_like(x), fuse=False)
    inside = ones > 1 - 1e-6  # every bilinear neighbour of these pixels is inside the crop window
    assert float(inside.float().mean()) > 0.3
    torch.testing.assert_close(fused[inside], unfused[inside], atol=2e-5, rtol=0)


@pytest.mark.parametrize("axis_aligned", [True, False])
def test_the_sampling_grid_is_affine_grids(axis_aligned):
    import numpy as np

    theta = np.random.default_rng(0).normal(size=(16, 2, 3))
    if axis_aligned:
        theta[:, 0, 1] = theta[:, 1, 0] = 0
    grid, keep = sampling_grid(theta, (12, 20))
    reference = F.affine_grid(torch.from_numpy(theta).float(), [16, 1, 12, 20], align_corners=False)
    assert keep is None
    torch.testing.assert_close(grid, reference, atol=1e-5, rtol=0)


def test_other_float_types_go_through():
    x = images(n=8).double()
    out = Augmenter(steps_of(E2))(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == x.shape


def test_consecutive_colour_operations_fuse_into_one_matrix():
    x = images(n=16).abs()
    steps = (step("color", brightness=[0.5, 1.5], contrast=[0.5, 1.5], saturation=[0.5, 1.5], hue=[-0.2, 0.2]),) * 2
    fused, p = run(steps, x)
    unfused, _ = run(steps, x, fuse=False)
    assert [indices for _, indices in Augmenter(steps).stages] == [[0, 1]]
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)
    for i in range(len(x)):
        ref = x[i]
        for q in p:
            ref = reference_color(ref, *(float(q[k][i]) for k in ("brightness", "contrast", "saturation", "hue")))
        torch.testing.assert_close(fused[i], ref, atol=2e-5, rtol=1e-5)


E2 = """hflip p=0.5
crop 16 pad=2
scale 16 short_side=16..24
color brightness=0.5..1.5 saturation=0.5..1.5 hue=-0.1..0.1
affine rotate=15 translate=0.1 shear=5
noise 0.05"""


def test_the_e2_pipeline_runs_on_a_batch():
    x = images(n=64)
    out = Augmenter(steps_of(E2))(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert not torch.equal(out, x)


# ---- determinism -----------------------------------------------------------------------------------------------


def test_a_seed_fixes_the_augmentation_and_a_restored_generator_continues_it():
    x = images(n=32)
    aug = Augmenter(steps_of(E2))
    g = torch.Generator().manual_seed(7)
    first = aug(x, g)
    state = g.get_state()
    second = aug(x, g)
    assert torch.equal(first, aug(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, second)
    g.set_state(state)
    assert torch.equal(second, aug(x, g))


def test_fused_and_unfused_draw_the_same_parameters():
    x = images(n=8)
    a = Augmenter(steps_of(E2)).draw(x.shape, torch.Generator().manual_seed(1))
    b = Augmenter(steps_of(E2), fuse=False).draw(x.shape, torch.Generator().manual_seed(1))
    assert a.__repr__() == b.__repr__()


def test_the_compiler_checks_augmentations_at_their_clause():
    def messages(augment, **kw):
        evaluate = kw.pop("evaluate", "")
        body = f"augment {{\n{augment}\n}}\n" if augment else ""
        source, shape = kw.get("source", "synthetic_images size=16"), kw.get("input", "[3, 16, 16]")
        text = f"spec t\ndata {{ source {source} }}\n{body}model {{\n    input {shape}\n    flatten\n    dense 4\n}}\n"
        text += f"evaluate {{\n{evaluate}\n}}\n" if evaluate else ""
        return [(d.line, d.message) for d in trick.check(text)]

    assert messages("hflip", input="[1, 40]", source="mnist1d")[0][1].startswith("hflip needs 2-D images")
    assert messages("crop 12 pad=2") == [(4, "crop 12 makes [3, 12, 12] images, but the model's input is [3, 16, 16]")]
    assert messages("crop 12\nscale 16 short_side=16..20") == []  # crop, then back to the input size
    assert messages("crop 30 pad=2")[0] == (4, "crop 30 is larger than the padded image [20, 20]")
    assert messages("scale 16 short_side=12..20")[0] == (4, "the short side must be at least the crop size 16 (it can be 12)")
    assert "strictly between -90 and 90" in messages("affine shear=90")[0][1]
    assert "needs RGB images" in messages("color hue=-0.1..0.1", input="[1, 8, 8]", source="digits")[0][1]
    assert "smaller than the images' short side" in messages("", evaluate="tta crops=5\nscales [8, 16]")[0][1]


# ---- test-time augmentation -----------------------------------------------------------------------------------


def linear_model(c=3, h=16, w=16, classes=4):
    weight = torch.randn(classes, c * h * w, generator=torch.Generator().manual_seed(5))
    return lambda v: v.flatten(1) @ weight.T * 0.1


def test_no_tta_gives_none():
    plan = plan_of("crop 16 pad=2")
    assert tta_logits(linear_model(), images(), plan.evaluate, plan.augment) is None
    assert tta_views(plan.evaluate) == 1


def test_tta_views_are_flips_of_the_corners_and_centre_of_the_padded_image():
    plan = plan_of("hflip\ncrop 16 pad=2", evaluate="tta hflip crops=5")
    x = images(n=5)
    seen = []
    model = linear_model()
    out = tta_logits(lambda v: seen.append(v) or model(v), x, plan.evaluate, plan.augment)
    assert tta_views(plan.evaluate) == len(seen) == 10
    windows = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
    for i in range(len(x)):
        padded = F.pad(x[i], (2, 2, 2, 2))
        views = [padded[:, t : t + 16, l : l + 16] for t, l in windows]
        views += [v.flip(-1) for v in views]
        for view, got in zip(views, seen):
            assert torch.equal(got[i], view)
        probs = torch.stack([F.softmax(model(v[None])[0], 0) for v in views]).mean(0)
        torch.testing.assert_close(out[i], probs.log(), atol=1e-5, rtol=1e-5)
    # crops=10 is the five crops and their mirrors: the same ten views
    plan10 = plan_of("crop 16 pad=2", evaluate="tta crops=10")
    assert tta_views(plan10.evaluate) == 10
    torch.testing.assert_close(tta_logits(model, x, plan10.evaluate, plan10.augment), out)


def test_tta_scales_resize_the_short_side_and_take_the_same_crops():
    plan = plan_of("", evaluate="tta hflip\nscales [16, 24]")
    x = images(n=4)
    model = linear_model()
    out = tta_logits(model, x, plan.evaluate, plan.augment)
    assert tta_views(plan.evaluate) == 4
    for i in range(len(x)):
        big = F.interpolate(x[i : i + 1], size=(24, 24), mode="bilinear", align_corners=False, antialias=True)[0][:, 4:20, 4:20]
        views = [x[i], x[i].flip(-1), big, big.flip(-1)]
        probs = torch.stack([F.softmax(model(v[None])[0], 0) for v in views]).mean(0)
        torch.testing.assert_close(out[i], probs.log(), atol=1e-5, rtol=1e-5)


def test_tta_of_a_model_with_heads_gives_one_result_per_head():
    plan = plan_of("", evaluate="tta hflip crops=5")
    model = linear_model()
    out = tta_logits(lambda v: {"label": model(v), "parity": model(v)[:, :2]}, images(n=3), plan.evaluate, ())
    assert out["label"].shape == (3, 4) and out["parity"].shape == (3, 2)
    torch.testing.assert_close(out["label"], tta_logits(model, images(n=3), plan.evaluate, ()))
    torch.testing.assert_close(out["label"].exp().sum(1), torch.ones(3))


def test_the_tta_centre_window_is_rounded_as_torchvision_center_crop_does():
    plan = plan_of("", evaluate="tta crops=1\nscales [19]")  # 19 -> 16: torchvision's centre is round(1.5) = 2, not 1
    x = images(n=3)
    seen = []
    tta_logits(lambda v: seen.append(v) or linear_model()(v), x, plan.evaluate, plan.augment)
    big = F.interpolate(x, size=(19, 19), mode="bilinear", align_corners=False, antialias=True)
    assert len(seen) == 1 and torch.equal(seen[0], big[..., 2:18, 2:18])
    from trick.runtime.tta import resized_size, tta_crops

    assert tta_crops(19, 21, 16, 16, 1) == [(2, 2)] and tta_crops(21, 21, 16, 16, 1) == [(2, 2)]  # round half to even, as Python's round
    assert resized_size(16, 24, 19) == (19, 28) and resized_size(24, 16, 19) == (28, 19)  # int(19 * 24 / 16) = int(28.5)


def test_tta_normalizes_each_view_cut_from_the_raw_image():
    plan = plan_of("crop 16 pad=2", evaluate="tta hflip crops=5")
    x = images(n=4).sigmoid()  # raw images
    shift, scale = 0.5, 0.25
    seen = []
    tta_logits(lambda v: seen.append(v) or linear_model()(v), x, plan.evaluate, plan.augment, lambda v: (v - shift) / scale)
    padded = F.pad(x, (2, 2, 2, 2))  # zeros of the raw data (black), normalized with the view
    torch.testing.assert_close(seen[0], (padded[..., :16, :16] - shift) / scale)
    assert float(seen[0][..., 0, 0].max()) == -2.0  # a padded pixel: raw 0 normalized


# ---- on the data's own scale: the trainer augments raw batches, then normalizes ------------------------------


def trainer_of(augment: str, source: str = "synthetic_images size=16 n=200", normalize: str = "normalize zscore per=channel"):
    from trick.runtime.data import load_splits
    from trick.runtime.trainer import Trainer

    text = f"spec t\ndata {{ source {source}\n{normalize} }}\n"
    text += f"augment {{\n{augment}\n}}\n" if augment else ""
    text += "model {\n    input [3, 16, 16]\n    flatten\n    dense 4\n}\ntrain { epochs 1\nbatch 16 }\n"
    program = trick.compile(text)
    splits = load_splits(program.plan.data, program.plan.seed, program.graph.input)
    return Trainer(program.model(), program.graph, program.plan, splits, torch.device("cpu")), splits


def test_the_normalizer_knows_whether_the_raw_data_lies_in_the_unit_interval():
    from trick.runtime.data import Normalizer

    assert Normalizer("zscore").fit(torch.rand(50, 3)).clamp == (0.0, 1.0)
    assert Normalizer().fit(torch.rand(50, 3)).clamp == (0.0, 1.0)
    assert Normalizer("minmax").fit(torch.rand(50, 3) * 16).clamp is None
    assert Normalizer("zscore").fit(torch.randn(50, 3)).clamp is None
    state = Normalizer("zscore", "feature").fit(torch.rand(50, 3)).state_dict()
    fresh = Normalizer()
    fresh.load_state_dict(state)
    assert fresh.clamp == (0.0, 1.0)
    del state["range"]  # a checkpoint from before the range was kept
    fresh.load_state_dict(state)
    assert fresh.clamp is None


def test_the_splits_keep_the_raw_inputs():
    trainer, splits = trainer_of("")
    assert float(splits.raw["train"].min()) >= 0 and float(splits.raw["train"].max()) <= 1
    assert torch.equal(splits.normalizer(splits.raw["test"]), splits.x_test)
    assert splits.normalizer.clamp == (0.0, 1.0) and not trainer.augment and trainer._raw == {}  # nothing to augment: no raw copy


def test_the_trainer_augments_raw_batches_and_then_normalizes_them():
    trainer, splits = trainer_of("hflip p=0.5\ncolor brightness=1.5..1.5")
    assert trainer.augment.clamp == (0.0, 1.0)
    index = torch.arange(16)
    state = trainer.generator.get_state()
    got = trainer.train_inputs(index)
    g = torch.Generator()
    g.set_state(state)
    want = splits.normalizer(Augmenter(trainer.plan.augment, clamp=(0.0, 1.0))(splits.raw["train"][index], g))
    assert torch.equal(got, want)
    # brightness on the raw scale: black stays black, white stays white (clamped), in normalized units
    black_white = torch.cat([torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)])
    out = splits.normalizer(trainer.augment(black_white, torch.Generator()))
    torch.testing.assert_close(out, splits.normalizer(black_white))


def test_a_batch_the_augmentation_leaves_alone_is_bit_for_bit_the_normalized_split():
    trainer, splits = trainer_of("hflip p=0")
    assert trainer.augment  # the raw path is taken
    index = torch.randperm(len(splits.x_train), generator=torch.Generator().manual_seed(0))[:16]
    assert torch.equal(trainer.train_inputs(index), splits.x_train[index])
    feature, _ = trainer_of("hflip p=0", normalize="normalize zscore")
    assert torch.equal(feature.train_inputs(index), feature.x["train"][index])


def test_tta_in_the_trainer_cuts_views_from_raw_test_images():
    trainer, _ = trainer_of("crop 16 pad=2")
    # one view, the centre window of the padded image (resized to its own size): the image itself, normalized
    trainer.plan = plan_of("crop 16 pad=2", evaluate="tta crops=1\nscales [16]")
    assert tta_views(trainer.plan.evaluate) == 1
    assert trainer.evaluate("test", tta=True)["loss"] == pytest.approx(trainer.evaluate("test")["loss"], abs=1e-6)


def test_a_scale_between_quarter_turns_fuses_into_one_chain_with_its_clamp():
    x = images(n=32)
    turn = lambda a: step("affine", rotate=[a, a], translate=0.0, scale=[1.0, 1.0], shear=[0.0, 0.0])  # noqa: E731
    steps = (turn(90.0), step("scale", size=16, short_side=[16, 24]), turn(-90.0))
    fused, _ = run(steps, x)  # not axis-aligned: the general chain, with the scale's clamp in the middle
    unfused, _ = run(steps, x, fuse=False)
    assert [len(indices) for _, indices in Augmenter(steps).stages] == [3]
    torch.testing.assert_close(fused, unfused, atol=2e-5, rtol=0)
    # a homography after the clamp of a scale that leaves the image as it is: the warp alone,
    # with the zeros it brings in from outside the frame (which the clamp must not fill)
    warped = Augmenter(steps_of("scale 16 short_side=16..16\nwarp 0.4 p=1"))
    params = warped.draw(x.shape, torch.Generator().manual_seed(0))
    alone = Augmenter(steps_of("warp 0.4 p=1"))
    got, want = warped.apply(x, params), alone.apply(x, params[1:])
    ones = alone.apply(torch.ones_like(x), params[1:])
    inside, outside = ones > 1 - 1e-6, ones == 0
    assert float(outside.float().mean()) > 0.05
    torch.testing.assert_close(got[inside], want[inside], atol=2e-5, rtol=0)
    assert (got[outside] == 0).all()
