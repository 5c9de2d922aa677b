"""Write a folder of PNG images of simple shapes, one class folder per shape, for `source folder`.

Each image is one shape (a class: circle, square, triangle, cross, ...) with a random centre,
half-size 0.2..0.4 of the side (always inside the image), colour and background colour (each
channel 0.3..0.7 away from the background's, modulo 1), plus pixel noise N(0, 0.03²), clipped,
as `source synthetic_images` draws them. Files are `ROOT/<shape>/0000.png, 0001.png, ...`;
with `splits`, `ROOT/train/<shape>/` and `ROOT/test/<shape>/` instead. The same seed writes the
same bytes. Needs numpy and Pillow only (no trick), so it runs anywhere.

    python specs/data/make_image_folder.py [ROOT] [--n 150] [--size 24] [--classes 4] [--seed 0] [--splits]

ROOT defaults to specs/data/shapes (what specs/shapes_folder.trick reads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar", "xcross", "halfdisc")


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Inside-masks in coordinates where the shape spans [-1, 1]² (y grows downwards)."""
    ax, ay = np.abs(dx), np.abs(dy)
    bar = 0.35
    r2 = dx**2 + dy**2
    diagonal = np.abs(dx - dy) / np.sqrt(2), np.abs(dx + dy) / np.sqrt(2)
    return {
        "circle": r2 <= 1,
        "square": np.maximum(ax, ay) <= 1,
        "triangle": (ay <= 1) & (ax <= (dy + 1) / 2),  # apex up
        "cross": ((ax <= 1) & (ay <= bar)) | ((ax <= bar) & (ay <= 1)),
        "ring": (r2 <= 1) & (r2 >= 0.55**2),
        "diamond": ax + ay <= 1,
        "hbar": (ax <= 1) & (ay <= bar),
        "vbar": (ax <= bar) & (ay <= 1),
        "xcross": (np.maximum(ax, ay) <= 1) & ((diagonal[0] <= bar * 0.8) | (diagonal[1] <= bar * 0.8)),
        "halfdisc": (r2 <= 1) & (dy <= 0),  # flat side down
    }[shape]


def draw(shape: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """n images of `shape`: uint8 [n, size, size, 3]."""
    half = rng.uniform(0.2, 0.4, n)
    cx, cy = rng.uniform(half, 1 - half), rng.uniform(half, 1 - half)
    background = rng.uniform(0, 1, (n, 3))
    color = (background + rng.uniform(0.3, 0.7, (n, 3))) % 1
    grid = (np.arange(size) + 0.5) / size  # pixel centres in [0, 1]
    dx = (grid[None, None, :] - cx[:, None, None]) / half[:, None, None]
    dy = (grid[None, :, None] - cy[:, None, None]) / half[:, None, None]
    mask = _shape_mask(shape, dx, dy)[..., None]  # [n, H, W, 1]
    x = np.where(mask, color[:, None, None, :], background[:, None, None, :])
    x = np.clip(x + rng.normal(0, 0.03, x.shape), 0, 1)
    return np.round(x * 255).astype(np.uint8)


def make_folder(root: Path | str, n_per_class: int = 150, size: int = 24, seed: int = 0, splits: bool = False,
                classes: int = 4) -> int:  # fmt: skip
    """Write the folder (see the module docstring) and return the number of images written.
    With `splits`, each class gets `n_per_class` images in train/ and max(1, n_per_class // 4)
    in test/. Existing files of the same names are overwritten."""
    if not 1 <= classes <= len(SHAPES):
        raise ValueError(f"classes must be 1..{len(SHAPES)}, got {classes}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    parts = {"train": n_per_class, "test": max(1, n_per_class // 4)} if splits else {"": n_per_class}
    written = 0
    for part, n in parts.items():
        for shape in SHAPES[:classes]:
            folder = root / part / shape if part else root / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i, pixels in enumerate(draw(shape, n, size, rng)):
                Image.fromarray(pixels, "RGB").save(folder / f"{i:04d}.png", compress_level=1)
            written += n
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent / "shapes"))
    parser.add_argument("--n", type=int, default=150, help="images per class (default 150)")
    parser.add_argument("--size", type=int, default=24, help="side in pixels (default 24)")
    parser.add_argument("--classes", type=int, default=4, help=f"number of shapes, 1..{len(SHAPES)} (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", action="store_true", help="write train/ and test/ folders")
    args = parser.parse_args()
    n = make_folder(args.root, args.n, args.size, args.seed, args.splits, args.classes)
    print(f"wrote {n:,} images in {args.classes} classes to {args.root}")


if __name__ == "__main__":
    main()
