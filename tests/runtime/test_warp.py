"""`augment { warp D p=P }`: the random perspective distortion, against an independent
homography sampler, fused with the other geometric steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import trick
from trick.compiler import ir
from trick.dsl.diagnostics import Span
from trick.runtime.augment import Augmenter
from trick.runtime.augment_ops import Warp, homography

SPAN = Span.point("t.trick", 1, 1)
ROOT = Path(__file__).resolve().parents[2]


def step(kind: str, **args) -> ir.Step:
    return ir.Step(kind, args, SPAN)


def run(steps, x, seed=0, fuse=True):
    augmenter = Augmenter(tuple(steps), fuse=fuse)
    params = augmenter.draw(x.shape, torch.Generator().manual_seed(seed))
    return augmenter.apply(x, params), params


def bilinear(image: np.ndarray, u: float, v: float) -> np.ndarray:
    """The image (C, H, W) at pixel coordinates (u, v) (pixel i centred at i), zeros outside:
    grid_sample's bilinear interpolation with zero padding, written out."""
    c, h, w = image.shape
    x0, y0 = int(np.floor(u)), int(np.floor(v))
    out = np.zeros(c)
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        weight = (1 - abs(u - xi)) * (1 - abs(v - yi))
        if 0 <= xi < w and 0 <= yi < h and weight > 0:
            out += weight * image[:, yi, xi]
    return out


def corners_of(params, i, h, w, distortion):
    """Where the image's corners moved to in sample i (the formula of the reference)."""
    corners = np.array([[0.0, 0.0], [w - 1, 0.0], [w - 1, h - 1], [0.0, h - 1]])
    inward = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    return corners + distortion * params["u"][i].numpy() * np.array([(w - 1) / 2, (h - 1) / 2]) * inward, corners


def test_the_homography_takes_the_moved_corners_to_the_corners():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 10, (5, 4, 2))
    dst = rng.uniform(0, 10, (5, 4, 2))
    m = homography(src, dst)
    for b in range(5):
        for k in range(4):
            p = m[b] @ np.array([*src[b, k], 1.0])
            np.testing.assert_allclose(p[:2] / p[2], dst[b, k], atol=1e-9)


def test_warp_samples_the_input_at_the_homography_of_each_sample():
    x = torch.rand(6, 3, 9, 12, dtype=torch.float64)
    out, (params,) = run([step("warp", distortion=0.6, p=0.5)], x)
    assert 0 < int(params["warp"].sum()) < 6  # some samples warped, some not
    h, w = 9, 12
    for i in range(len(x)):
        if not params["warp"][i]:
            torch.testing.assert_close(out[i], x[i], atol=1e-9, rtol=0)
            continue
        moved, corners = corners_of(params, i, h, w, 0.6)
        m = homography(moved[None], corners[None])[0]  # output pixel -> input pixel
        ref = np.zeros((3, h, w))
        for yo in range(h):
            for xo in range(w):
                p = m @ np.array([xo, yo, 1.0])
                ref[:, yo, xo] = bilinear(x[i].numpy(), p[0] / p[2], p[1] / p[2])
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-9)


def test_what_was_at_a_corner_shows_at_the_moved_corner():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 0, 0] = 1.0  # only the top-left pixel is lit
    warp = Warp(step("warp", distortion=0.5, p=1.0))
    params = {"warp": torch.tensor([True]), "u": torch.tensor([[[0.8, 0.4], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]], dtype=torch.float64)}
    out = Augmenter((warp.step,)).apply(x, [params])
    moved, _ = corners_of(params, 0, 21, 21, 0.5)
    assert moved[0].tolist() == [4.0, 2.0]
    assert float(out[0, 0, 2, 4]) == pytest.approx(1.0, abs=1e-5)  # at integer positions: the lit pixel itself


def test_no_distortion_or_no_probability_leaves_the_images_alone():
    x = torch.rand(8, 3, 10, 10)
    for args in ({"distortion": 0.0, "p": 1.0}, {"distortion": 0.7, "p": 0.0}):
        out, _ = run([step("warp", **args)], x)
        torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_warp_fuses_with_flips_and_crops_into_one_resampling(monkeypatch):
    import torch.nn.functional as F

    x = torch.rand(16, 3, 16, 16, dtype=torch.float64)
    steps = [step("warp", distortion=0.4, p=1.0), step("hflip", p=0.5), step("crop", size=12, pad=0), step("affine", rotate=(90.0, 90.0), translate=0.0, scale=(1.0, 1.0), shear=(0.0, 0.0))]
    calls = []
    original = F.grid_sample
    monkeypatch.setattr(F, "grid_sample", lambda *a, **k: calls.append(1) or original(*a, **k))
    fused, _ = run(steps, x)
    assert len(calls) == 1
    unfused, _ = run(steps, x, fuse=False)
    assert len(calls) == 5
    # flips, crops and quarter turns after the warp are exact copies: one resampling or four
    # give the same images
    torch.testing.assert_close(fused, unfused, atol=1e-9, rtol=0)


def test_a_warp_after_a_padded_crop_keeps_the_padding_dark():
    x = torch.ones(32, 1, 16, 16, dtype=torch.float64)
    steps = [step("crop", size=16, pad=4), step("warp", distortion=0.3, p=1.0)]
    fused, _ = run(steps, x)
    unfused, _ = run(steps, x, fuse=False)
    assert float(fused.max()) <= 1.0 + 1e-12
    dark = fused == 0
    assert float(dark.double().mean()) > 0.05  # the crop's padding shows
    # the fused warp samples the crop's frame, not what lay around it: where one resampling
    # gives black, so do two, but for the half-pixel rim where the unfused warp blends the
    # crop's edge with the zeros around it
    assert float((dark == (unfused == 0)).double().mean()) > 0.95


def test_the_same_seed_gives_the_same_warps():
    x = torch.rand(4, 3, 12, 12)
    a, _ = run([step("warp", distortion=0.5, p=0.5)], x, seed=3)
    b, _ = run([step("warp", distortion=0.5, p=0.5)], x, seed=3)
    c, _ = run([step("warp", distortion=0.5, p=0.5)], x, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_warp_needs_images():
    text = "spec s\ndata { source mnist1d }\naugment { warp 0.2 }\nmodel {\n    input [1, 40]\n    flatten\n    dense 10\n}\n"
    [d] = trick.check(text)
    assert (d.span.line, d.span.column, d.message) == (3, 11, "warp needs 2-D images, the data is [1, 40]")
    [d] = trick.check(text.replace("warp 0.2", "warp 1.5"))
    assert d.message == "warp: 1.5 is out of range; expected a number in [0, 1]"


@pytest.mark.slow
def test_the_warp_example_spec_trains_from_the_command_line(tmp_path):
    spec = ROOT / "specs" / "tiny_images_warp.trick"
    done = subprocess.run(
        [sys.executable, "-m", "trick", "run", str(spec), "--set", "train.epochs=1", "--set", "data.source.n=200", "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout
    assert (tmp_path / "run" / "summary.json").is_file()
