"""The augmentation engine against direct per-sample references.

Each reference below is written independently of the engine: it takes one sample and the
parameters the engine drew for it, and applies the operation the plain way (slicing, torch.flip,
F.interpolate, one-image affine_grid/grid_sample, the colour formulas pixel by pixel).
"""

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


def test_scale_resizes_to_a_random_short_side_and_crops():
    x = images(n=30, h=12, w=16)
    out, (p,) = run((step("scale", size=12, short_side=[12, 20]),), x)
    assert out.shape == (30, 3, 12, 12)
    for i in range(len(x)):
        short = int(p["short"][i])
        hr, wr = short, math.floor(16 * short / 12 + 0.5)
        resized = F.interpolate(x[i : i + 1], size=(hr, wr), mode="bilinear", align_corners=True)[0]
        top = min(int(p["u_top"][i] * (hr - 12 + 1)), hr - 12)
        left = min(int(p["u_left"][i] * (wr - 12 + 1)), wr - 12)
        torch.testing.assert_close(out[i], resized[:, top : top + 12, left : left + 12], atol=2e-5, rtol=0)


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


def reference_color(image, b, c, s, h):
    """The colour formulas pixel by pixel, in float64; the hue turn by Rodrigues' vector formula."""
    x = image.double() * b
    mean_gray = (LUMA[:, None, None] * x).sum(0).mean()
    x = c * x + (1 - c) * mean_gray
    gray = (LUMA[:, None, None] * x).sum(0)
    x = s * x + (1 - s) * gray
    v = x.reshape(3, -1).T  # pixels as RGB vectors
    u = torch.full((3,), 1 / math.sqrt(3), dtype=torch.float64).expand_as(v)
    a = 2 * math.pi * h
    v = v * math.cos(a) + torch.linalg.cross(u, v) * math.sin(a) + u * (v * u).sum(1, keepdim=True) * (1 - math.cos(a))
    return v.T.reshape(image.shape).float()


def test_color_matches_its_formulas():
    x = images(n=20).abs()
    out, (p,) = run(steps_of("color brightness=0.5..1.5 contrast=0.5..1.5 saturation=0..2 hue=-0.5..0.5"), x)
    for i in range(len(x)):
        ref = reference_color(x[i], *(float(p[k][i]) for k in ("brightness", "contrast", "saturation", "hue")))
        torch.testing.assert_close(out[i], ref, atol=2e-5, rtol=1e-5)


def test_hue_turns_red_into_green_at_a_third_of_a_turn():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(4, 3, 2, 2).contiguous()
    out = Augmenter(steps_of("color hue=0.3333333333..0.3333333333"))(red, torch.Generator())
    torch.testing.assert_close(out, red.roll(1, dims=1), atol=1e-6, rtol=0)


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
    e2 = "hflip\ncrop 16 pad=2\nscale 16 short_side=16..24\ncolor brightness=0.5..1.5 hue=-0.1..0.1\naffine rotate=15 shear=5"
    run(steps_of(e2), images(n=8))
    assert calls == ["bilinear"]  # a colour change without contrast commutes with the warps
    calls.clear()
    run(steps_of(e2), images(n=8), fuse=False)
    assert len(calls) == 4
    calls.clear()
    run(steps_of(e2.replace("hue=", "contrast=0.5..1.5 hue=")), images(n=8))
    assert calls == ["bilinear", "bilinear"]  # contrast needs the image as it is before the affine
    calls.clear()
    run(steps_of("hflip\ncrop 16 pad=2"), images(n=8))
    assert calls == ["nearest"]


def test_a_linear_colour_change_between_warps_is_applied_after_the_fused_warp():
    x = images(n=32)
    steps = steps_of("hflip\ncrop 16 pad=3\ncolor brightness=0.5..1.5 saturation=0..2 hue=-0.5..0.5\naffine rotate=90..90")
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
        big = F.interpolate(x[i : i + 1], size=(24, 24), mode="bilinear", align_corners=True)[0][:, 4:20, 4:20]
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
