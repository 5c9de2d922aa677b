"""The augmentation engine: batched, per-sample, on the training device, fused.

`Augmenter(steps)` runs the `augment` block on a whole batch at once. Every sample gets its
own random parameters, drawn from the run's CPU data generator (the RNG state that
checkpoints save), so a seed fixes them and a resumed run continues the same stream. There is
no Python loop over samples anywhere: each operation draws a handful of (B,) parameter
tensors, and the work on the pixels is done by a few batched tensor operations.

The steps run in spec order, with maximal runs of consecutive operations fused:

- geometric operations on images (`hflip`, `crop`, `scale`, `affine`, `warp`) compose into
  one 3x3 matrix per sample (affine, or a homography once a `warp` is in the run), applied
  with one sampling grid (F.affine_grid's values; projected, for a homography) and a single
  `F.grid_sample` (zero padding, align_corners=False). An enlarging `scale` cuts the product
  where its source coordinates are clamped into its input (as F.interpolate clamps them): the
  grid is then computed as a chain (`geometry.warp_chain`), still one grid_sample; a `scale`
  that can shrink is antialiased, by F.interpolate, on its own. When every composed matrix
  maps pixel centres to pixel centres (flips, whole-pixel translations, quarter turns), the
  sampling mode is `nearest`, which is then an exact pixel copy; otherwise it is `bilinear`;
- colour operations (`color`, torchvision's definitions) run as one pass over the batch: on
  data in [0, 1] (`clamp`) factor by factor, each clamped as torchvision clamps it; otherwise
  brightness, contrast and saturation compose into one CxC matrix plus offset per sample,
  applied with a single batched matrix product (the per-image mean that contrast needs is
  folded into the offset), and the HSV hue shift follows. A colour change that is a linear
  map of the channels (no contrast, no hue, no clamp) commutes with warps, so the geometric
  operations on both sides of it join one warp (see `Augmenter`);
- geometric operations on sequences (`shift`, `flip`) compose into one integer index map
  per sample, applied with a single `gather` (exact, zero fill);
- `noise` adds Gaussian noise drawn on the device from a generator seeded by the data
  generator.

The batch is on the data's own scale (before `normalize`); the trainer normalizes the result.
The operations themselves are in augment_ops.py, the sampling grid in geometry.py, the
test-time augmentation of the `evaluate` block in tta.py. docs/augmentation.md gives the
formulas and says where the fused pipeline differs from running the operations one by one.
The compiler has checked each step against the samples it gets (ranks, sizes, channels), so
nothing here checks them again.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..compiler import ir
from .augment_ops import Affine, Color, ColorState, Crop, Flip, HFlip, Noise, Op, Scale, Shift, Warp, _eye, _np, blend, hue_shift
from .dispatch import implementation
from .geometry import warp, warp_chain

# The dispatch table: one implementation per name of the registry's augmentations (a test holds both sides equal).
OPS: dict[str, type[Op]] = {
    "shift": Shift,
    "flip": Flip,
    "hflip": HFlip,
    "crop": Crop,
    "scale": Scale,
    "affine": Affine,
    "warp": Warp,
    "color": Color,
    "noise": Noise,
}


# ---- fused stages ----------------------------------------------------------------------------------------


def _sequence_stage(ops, params, x):
    """One gather for a run of shift/flip: i_in = a·i_out + b per sample, zeros outside."""
    n, length = x.shape[0], x.shape[-1]
    a = torch.ones(n, dtype=torch.long)
    b = torch.zeros(n, dtype=torch.long)
    for op, p in zip(ops, params):
        ak, bk = op.index_map(p, length)
        a, b = a * ak, a * bk + b
    source = a.to(x.device)[:, None] * torch.arange(length, device=x.device) + b.to(x.device)[:, None]  # (B, L)
    inside = (source >= 0) & (source < length)
    index = source.clamp(0, length - 1).unsqueeze(1).expand_as(x)
    return torch.gather(x, -1, index) * inside.unsqueeze(1).to(x.dtype)


def _geometric_stage(ops, params, x):
    """A run of image operations as one warp: M = A_1 · A_2 · ... · A_k (output -> input).

    A resize that clamps its source coordinates (`scale`) breaks the product into a chain of
    pieces with a clamp between them (still one grid_sample, `geometry.warp_chain`); a resize
    that can shrink the image (antialiased) is computed on its own, between the warps of the
    operations before and after it.
    """
    start = 0
    size = tuple(x.shape[-2:])
    for j, op in enumerate(ops):
        if op.materializes(size):
            if j > start:
                x = _warp_run(ops[start:j], params[start:j], x)
            x = op.resize_crop(x, params[j])
            start = j + 1
        size = op.out_size(size)
    if start < len(ops):
        x = _warp_run(ops[start:], params[start:], x)
    return x


def _warp_run(ops, params, x):
    """Operations that are maps of pixel coordinates, as one sampling grid and one grid_sample."""
    n = x.shape[0]
    size = tuple(x.shape[-2:])
    matrices, sizes_in, sizes = [], [], []
    for op, p in zip(ops, params):
        out = op.out_size(size)
        matrices.append(op.matrix(p, size, out))
        sizes_in.append(size)
        sizes.append(out)
        size = out
    # The output of op j (j < k) is an intermediate image ("canvas"); suffix = A_{j+1} ... A_k
    # maps the final output pixels into it. It needs a check unless op j + 1 samples only
    # inside it (then the check of op j + 1's own output, or the final frame, covers it).
    # Walking from the output to the input, a clamping op ends a piece: the points mapped so
    # far are clamped into its input frame before the ops before it map them on.
    pieces = []
    canvases = []
    suffix = _eye(n)
    pending = False  # whether ops were composed into suffix since the last clamp
    for j in range(len(ops) - 1, -1, -1):
        if j < len(ops) - 1 and not ops[j + 1].stays_inside(sizes[j]):
            canvases.append((suffix, sizes[j]))
        suffix, pending = matrices[j] @ suffix, True
        if ops[j].clamps:
            pieces.append((suffix, canvases[::-1], sizes_in[j]))
            suffix, canvases, pending = _eye(n), [], False
    if pending:
        pieces.append((suffix, canvases[::-1], None))
    if len(pieces) == 1 and pieces[0][2] is None:
        m, frames, _ = pieces[0]
        return warp(x, m, size, frames)
    return warp_chain(x, pieces, size)


def _apply_colour_matrix(state: ColorState, work: torch.Tensor) -> torch.Tensor:
    n, k = work.shape[:2]
    flat = work.reshape(n, k, -1)
    matrix = torch.from_numpy(state.m).to(work.device, work.dtype)
    offset = torch.from_numpy(state.o).to(work.device, work.dtype)
    if state.uses_mean:
        offset = offset + (torch.from_numpy(state.q).to(work.device, work.dtype) @ flat.mean(-1, keepdim=True)).squeeze(-1)
    return torch.baddbmm(offset.unsqueeze(-1), matrix, flat).view_as(work)


def _color_stage(ops, params, x):
    """A run of colour operations: brightness, contrast and saturation as one batched (C x C
    matrix, offset) per sample where nothing is clamped between them; each factor on its own,
    followed by the clamp, where the data is in [0, 1]; hue (HSV) on its own."""
    n, k = x.shape[:2]
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    state = None
    for op, p in zip(ops, params):
        for kind in op.factors():
            f = _np(p[kind])
            if kind == "hue":
                if state is not None:
                    work, state = _apply_colour_matrix(state, work), None
                work = hue_shift(work, f)
            elif op.clamp is not None:
                work = blend(work, kind, f).clamp_(*op.clamp)
            else:
                if state is None:
                    state = ColorState(n, k)
                getattr(state, kind)(f)
    if state is not None:
        work = _apply_colour_matrix(state, work)
    return work.to(x.dtype)


def _noise_stage(ops, params, x):
    for op, p in zip(ops, params):
        x = op.apply(x, p)
    return x


def _image_stage(ops, params, x):
    """A run of image operations: its geometric ones as one warp, then its colour ones as one matrix.

    Colour operations without contrast are linear maps of each pixel's channels, which commute
    with a warp (itself a linear map of the pixels, channel by channel); the stage is built
    so that only those ever come before a geometric operation (see `Augmenter`).
    """
    geometric = [(op, p) for op, p in zip(ops, params) if op.family == "geometric"]
    color = [(op, p) for op, p in zip(ops, params) if op.family == "color"]
    if geometric:
        x = _geometric_stage([op for op, _ in geometric], [p for _, p in geometric], x)
    if color:
        x = _color_stage([op for op, _ in color], [p for _, p in color], x)
    return x


STAGES: dict[str, Callable] = {"sequence": _sequence_stage, "image": _image_stage, "noise": _noise_stage}  # by Op.stage


class Augmenter:
    """The `augment` block as one callable: x (B, ...) -> augmented x, in training only.

    x is on the data's own scale (raw, before `normalize`): the trainer calls
    `Augmenter(plan.augment, clamp=splits.normalizer.clamp)(x_raw, generator)` on each raw
    training batch and then normalizes the result with the splits' Normalizer. `clamp` is
    (0, 1) when the raw training data lies in [0, 1]: colour results are then clamped into it
    after each factor, as torchvision does; None clamps nothing.

    The operations are grouped into stages, in spec order: a maximal run of sequence
    operations (one gather), a maximal run of image operations (one warp, then the colour
    pass), or one `noise`. An image run takes every geometric and colour operation in a
    row, except that a geometric operation does not join a run that holds a colour operation
    that is not a linear map of the pixels' channels (contrast needs the mean of the image as
    it is at that point, hue and clamping are not linear, so the warp cannot move in front of
    it): a new run starts there.

    `fuse=False` runs every operation on its own (one warp per geometric operation), which
    the tests compare the fused pipeline against.
    """

    def __init__(self, steps: tuple[ir.Step, ...], fuse: bool = True, clamp: tuple[float, float] | None = None):
        self.steps = tuple(steps)
        self.ops = [implementation(OPS, s.kind, "augmentation", s.span)(s) for s in self.steps]
        self.fuse = fuse
        self.clamp = None if clamp is None else (float(clamp[0]), float(clamp[1]))
        for op in self.ops:
            op.clamp = self.clamp
        self.stages: list[tuple[str, list[int]]] = []  # (kind, indices of its operations)
        for i, op in enumerate(self.ops):
            kind = op.stage
            last = self.stages[-1] if self.stages else None
            join = fuse and last is not None and last[0] == kind and kind != "noise"
            if join and op.family == "geometric":
                join = all(self.ops[j].linear for j in last[1] if self.ops[j].family == "color")
            if join:
                last[1].append(i)
            else:
                self.stages.append((kind, [i]))

    def __bool__(self) -> bool:
        return bool(self.ops)

    def draw(self, shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> list[dict[str, Any]]:
        """Every operation's per-sample parameters for a batch of this shape, in spec order."""
        n, channels, *rest = shape
        size = tuple(rest)
        params = []
        for op in self.ops:
            params.append(op.draw(n, channels, size, generator))
            size = op.out_size(size)
        return params

    def apply(self, x: torch.Tensor, params: list[dict[str, Any]]) -> torch.Tensor:
        """The batch transformed with the given parameters (deterministic)."""
        for kind, indices in self.stages:
            x = STAGES[kind]([self.ops[i] for i in indices], [params[i] for i in indices], x)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.draw(x.shape, generator))
