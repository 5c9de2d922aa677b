"""The batched augmentation engine against a per-sample Python loop doing the same operations.

A batch of 256 RGB images of 32x32 goes through the E2 image pipeline (`tiny_images`, at 32
pixels): hflip, crop with padding, scale, color, affine. The loop is what a per-image
transform in a Dataset does (torchvision style): for each image, draw its parameters, flip,
pad and slice, resize with F.interpolate and slice, apply the colour formulas (clamped to
[0, 1], the hue through HSV, as torchvision), and warp with a one-image affine_grid/grid_sample.

The same pipeline is also timed in kornia.augmentation (the `dev` extra), as a user of it
writes it, on the same batch: RandomHorizontalFlip(p=0.5), RandomCrop(32, padding=4),
RandomResizedCrop(32, scale=((32/48)², 1), ratio=(1, 1)) (a zoom by L/32, L in 32..48, then
a 32x32 window: the window covers (32/L)² of the image), ColorJitter(brightness=0.5,
saturation=0.5, hue=0.1) and RandomAffine(15, translate=0.1, shear=5), each with p=1 but the
flip. kornia draws its parameters per sample too and warps the batch, one operation at a time.

All run on the CPU, on one thread by default: the figure then measures what batching buys,
not how busy the machine's other cores are (on a loaded 2-core machine, torch's intra-op
threads can slow large operations down several times while barely touching the loop).

    python bench/augment.py [--threads N]   # the timings, `speedup: N.Nx` (the loop's time over the
                                            # engine's), then `kornia speedup: N.Nx` last (kornia's over the engine's)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trick  # noqa: E402
from trick.runtime.augment import Augmenter  # noqa: E402
from trick.runtime.augment_ops import LUMA  # noqa: E402
from timing import median_seconds  # noqa: E402  (bench/ is the script's folder)

BATCH, SIZE = 256, 32
SPEC = f"""spec bench_augment
data {{ source synthetic_images classes=4 size={SIZE} }}
augment {{
    hflip p=0.5
    crop {SIZE} pad=4
    scale {SIZE} short_side={SIZE}..{SIZE + SIZE // 2}
    color brightness=0.5..1.5 saturation=0.5..1.5 hue=-0.1..0.1
    affine rotate=15 translate=0.1 shear=5
}}
model {{
    input [3, {SIZE}, {SIZE}]
    avgpool global
    dense 4
}}
"""


def hue_shift(image: torch.Tensor, h: float) -> torch.Tensor:
    """torchvision's adjust_hue on one RGB image in [0, 1]: to HSV, h shifted, back to RGB."""
    r, gr, b = image
    maxc, minc = image.amax(0), image.amin(0)
    same = maxc == minc
    cr = maxc - minc
    sat = cr / torch.where(same, torch.ones_like(maxc), maxc)
    div = torch.where(same, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / div, (maxc - gr) / div, (maxc - b) / div
    hue = (maxc == r) * (bc - gc) + ((maxc == gr) & (maxc != r)) * (2.0 + rc - bc) + ((maxc != gr) & (maxc != r)) * (4.0 + gc - rc)
    hue = torch.fmod(hue / 6.0 + 1.0 + h, 1.0)
    i = torch.floor(hue * 6.0)
    f = hue * 6.0 - i
    i = i.long() % 6
    v = maxc
    p, q, t = (v * (1 - sat)).clamp(0, 1), (v * (1 - sat * f)).clamp(0, 1), (v * (1 - sat * (1 - f))).clamp(0, 1)
    mask = (i == torch.arange(6)[:, None, None]).to(image.dtype)
    channels = torch.stack([torch.stack(a) for a in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))])  # (3, 6, H, W)
    return (mask[None] * channels).sum(1)


def per_sample_loop(steps, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The same pipeline, one image at a time."""
    args = {s.kind: s.args for s in steps}
    luma = torch.tensor(LUMA)
    out = []
    for image in x:
        # hflip
        if float(torch.rand(1, generator=g)) < args["hflip"]["p"]:
            image = image.flip(-1)
        # crop after zero padding
        size, pad = args["crop"]["size"], args["crop"]["pad"]
        padded = F.pad(image, (pad, pad, pad, pad))
        top = int(torch.randint(0, padded.shape[1] - size + 1, (1,), generator=g))
        left = int(torch.randint(0, padded.shape[2] - size + 1, (1,), generator=g))
        image = padded[:, top : top + size, left : left + size]
        # scale: random short side, resize (half-pixel centres, as torchvision), random crop
        size, (low, high) = args["scale"]["size"], args["scale"]["short_side"]
        short = int(torch.randint(low, high + 1, (1,), generator=g))
        resized = F.interpolate(image[None], size=(short, short), mode="bilinear", align_corners=False, antialias=short < image.shape[-1])[0]
        top = int(torch.randint(0, short - size + 1, (1,), generator=g))
        left = int(torch.randint(0, short - size + 1, (1,), generator=g))
        image = resized[:, top : top + size, left : left + size]
        # color: brightness, contrast, saturation (each clamped to [0, 1]), then an HSV hue shift
        c = args["color"]
        ranges = (c["brightness"], c["contrast"], c["saturation"], c["hue"])
        b, k, s, h = (lo + (hi - lo) * float(torch.rand(1, generator=g)) for lo, hi in ranges)
        image = (image * b).clamp(0, 1)
        image = (k * image + (1 - k) * (luma[:, None, None] * image).sum(0).mean()).clamp(0, 1)
        image = (s * image + (1 - s) * (luma[:, None, None] * image).sum(0, keepdim=True)).clamp(0, 1)
        image = hue_shift(image, h)
        # affine about the centre
        a = args["affine"]
        angle = math.radians(a["rotate"][0] + (a["rotate"][1] - a["rotate"][0]) * float(torch.rand(1, generator=g)))
        t = a["translate"]
        dx, dy = (2 * t * float(torch.rand(1, generator=g)) - t for _ in range(2))  # fractions of the size
        zoom = a["scale"][0] + (a["scale"][1] - a["scale"][0]) * float(torch.rand(1, generator=g))
        shear = math.radians(a["shear"][0] + (a["shear"][1] - a["shear"][0]) * float(torch.rand(1, generator=g)))
        # output -> input in grid_sample's coordinates (square image): Z^-1 Sh^-1 R^-1 (p - 2d)
        cos, sin, tan = math.cos(angle), math.sin(angle), math.tan(shear)
        a, b, c, d = (cos - tan * sin) / zoom, (-sin - tan * cos) / zoom, sin / zoom, cos / zoom
        theta = torch.tensor([[[a, b, -2 * (a * dx + b * dy)], [c, d, -2 * (c * dx + d * dy)]]])
        grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
        image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        out.append(image)
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    torch.set_num_threads(parser.parse_args().threads)
    steps = trick.compile(SPEC).plan.augment
    engine = Augmenter(steps, clamp=(0.0, 1.0))  # images in [0, 1], as the trainer clamps them
    x = torch.rand(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    assert engine(x, g).shape == per_sample_loop(steps, x, g).shape == x.shape
    for _ in range(3):  # warm up
        engine(x, g)
    pipeline = kornia_pipeline()
    if pipeline is not None:
        assert pipeline(x).shape == x.shape
        for _ in range(3):
            pipeline(x)
    fast = median_seconds(lambda: engine(x, g), 30)
    slow = median_seconds(lambda: per_sample_loop(steps, x, g), 5)
    theirs = median_seconds(lambda: pipeline(x), 30) if pipeline is not None else None
    threads = torch.get_num_threads()
    print(f"pipeline: {', '.join(s.kind for s in steps)} on a batch of {BATCH} x 3x{SIZE}x{SIZE}, {threads} thread(s)")
    print(f"engine (batched, fused):   {fast * 1e3:8.2f} ms per batch")
    print(f"per-sample Python loop:    {slow * 1e3:8.2f} ms per batch")
    if theirs is not None:
        print(f"kornia.augmentation:       {theirs * 1e3:8.2f} ms per batch")
    print(f"speedup: {slow / fast:.1f}x")
    if theirs is not None:
        print(f"kornia speedup: {theirs / fast:.1f}x")
    else:
        print("kornia is not installed (the `dev` extra): no kornia figure")


def kornia_pipeline():
    """The same pipeline in kornia.augmentation, or None without kornia."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    return torch.nn.Sequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomCrop((SIZE, SIZE), padding=4),
        K.RandomResizedCrop((SIZE, SIZE), scale=((SIZE / (SIZE + SIZE // 2)) ** 2, 1.0), ratio=(1.0, 1.0)),
        K.ColorJitter(brightness=0.5, saturation=0.5, hue=0.1, p=1.0),
        K.RandomAffine(degrees=15, translate=(0.1, 0.1), shear=5, p=1.0),
    )


if __name__ == "__main__":
    main()
