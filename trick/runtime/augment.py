"""The augmentation engine: batched, per-sample, on the training device, fused.

`Augmenter(steps)` runs the `augment` block on a whole batch at once. Every sample gets its
own random parameters, drawn from the run's CPU data generator (the RNG state that
checkpoints save), so a seed fixes them and a resumed run continues the same stream. There is
no Python loop over samples anywhere: each operation draws a handful of (B,) parameter
tensors, and the work on the pixels is done by a few batched tensor operations.

The steps run in spec order, with maximal runs of consecutive operations fused:

- geometric operations on images (`hflip`, `crop`, `scale`, `affine`) compose into one
  2x3 affine matrix per sample, applied with one sampling grid (F.affine_grid's values) and
  a single `F.grid_sample` (zero padding, align_corners=False). When every composed matrix
  maps pixel centres to pixel centres (flips, whole-pixel translations, quarter turns), the
  sampling mode is `nearest`, which is then an exact pixel copy; otherwise it is `bilinear`;
- colour operations (`color`) compose into one CxC matrix plus offset per sample, applied
  with a single batched matrix product; the per-image mean that contrast needs is folded
  into the offset. A colour change without contrast commutes with warps, so the geometric
  operations on both sides of it join one warp (see `Augmenter`);
- geometric operations on sequences (`shift`, `flip`) compose into one integer index map
  per sample, applied with a single `gather` (exact, zero fill);
- `noise` adds Gaussian noise drawn on the device from a generator seeded by the data
  generator.

`tta_logits` is the test-time augmentation of the `evaluate` block (flips, corner and centre
crops, several scales), averaging the softmax outputs. docs/augmentation.md gives the
formulas and says where the fused pipeline differs from running the operations one by one.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..compiler import ir

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B in the gray (luma) of a pixel

_F64 = torch.float64
_OUTSIDE = -4.0  # a normalized grid coordinate far enough outside [-1, 1] to sample zeros


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    """n draws from U(low, high), float64, on the CPU (always consumes n numbers of g)."""
    return low + (high - low) * torch.rand(n, generator=g, dtype=_F64)


def _eye(n: int, k: int = 3) -> np.ndarray:
    return np.tile(np.eye(k), (n, 1, 1))


def _np(t: torch.Tensor) -> np.ndarray:
    """A CPU parameter tensor as float64 numpy (the per-sample matrix algebra is done in numpy:
    a few hundred tiny operations cost a fraction of what they cost as torch calls)."""
    return t.numpy().astype(np.float64)


# ---- the operations -----------------------------------------------------------------------------------
#
# An operation knows its family, what it does to the size of a sample, how it draws its
# per-sample parameters (CPU tensors, in a fixed order), and its share of the fused work:
# a pixel-coordinate matrix (geometric), an index map (sequence), or a colour matrix; the
# matrices are float64 numpy arrays (B, 3, 3), built on the CPU and sent to the device once.
#
# Geometric matrices map the homogeneous pixel coordinates (x, y, 1) of the operation's OUTPUT
# to those of its INPUT ("where does this output pixel come from"), with pixel i centred at
# coordinate i and covering [i - 0.5, i + 0.5]; x is the column, y the row (pointing down).


class Op:
    family = ""

    def __init__(self, step: ir.Step):
        self.step, self.args, self.kind = step, step.args, step.kind

    def out_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        return size

    def check(self, channels: int, size: tuple[int, ...]) -> None:
        rank = {"sequence": 1, "geometric": 2, "color": 2}.get(self.family)
        if rank is not None and len(size) != rank:
            what = "sequences [B, C, L]" if rank == 1 else "images [B, C, H, W]"
            raise ValueError(f"{self.kind} needs {what}, the batch has {len(size) + 2} dimensions")

    def draw(self, n: int, channels: int, size: tuple[int, ...], g: torch.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def stays_inside(self, size_in: tuple[int, ...]) -> bool:
        """Whether every point of the op's output frame comes from inside its input frame
        (then the input frame needs no check of its own when the op's output is checked)."""
        return False

    # whether a colour op is a linear map of each pixel's channels (commutes with warps)
    linear = False


class Shift(Op):
    """Sequence translation by s ∈ {-max..max}: out[i] = in[i - s], zeros where i - s is outside."""

    family = "sequence"

    def draw(self, n, channels, size, g):
        m = self.args["max"]
        return {"s": torch.randint(-m, m + 1, (n,), generator=g)}

    def index_map(self, p, length):
        return torch.ones_like(p["s"]), -p["s"]


class Flip(Op):
    """Sequence reversal with probability p: out[i] = in[L - 1 - i]."""

    family = "sequence"

    def draw(self, n, channels, size, g):
        return {"flip": torch.rand(n, generator=g) < self.args["p"]}

    def index_map(self, p, length):
        f = p["flip"].long()
        return 1 - 2 * f, f * (length - 1)


class HFlip(Op):
    """Mirror left-right with probability p: x_in = W - 1 - x_out."""

    family = "geometric"

    def stays_inside(self, size_in):
        return True

    def draw(self, n, channels, size, g):
        return {"flip": torch.rand(n, generator=g) < self.args["p"]}

    def matrix(self, p, size_in, size_out):
        h, w = size_in
        s = 1.0 - 2.0 * _np(p["flip"])
        m = _eye(len(s))
        m[:, 0, 0] = s
        m[:, 0, 2] = (1.0 - s) / 2.0 * (w - 1)
        return m


class Crop(Op):
    """Zero-pad by P, then a SIZE x SIZE window at a uniform integer offset: x_in = x_out + ox - P."""

    family = "geometric"

    def out_size(self, size):
        return (self.args["size"], self.args["size"])

    def stays_inside(self, size_in):
        return self.args["pad"] == 0

    def check(self, channels, size):
        super().check(channels, size)
        s, pad = self.args["size"], self.args["pad"]
        if s > min(size) + 2 * pad:
            raise ValueError(f"crop {s} is larger than the padded image [{size[0] + 2 * pad}, {size[1] + 2 * pad}]")

    def draw(self, n, channels, size, g):
        h, w = size
        s, pad = self.args["size"], self.args["pad"]
        top = torch.randint(0, h + 2 * pad - s + 1, (n,), generator=g)
        left = torch.randint(0, w + 2 * pad - s + 1, (n,), generator=g)
        return {"top": top, "left": left}

    def matrix(self, p, size_in, size_out):
        pad = self.args["pad"]
        m = _eye(len(p["top"]))
        m[:, 0, 2] = _np(p["left"]) - pad
        m[:, 1, 2] = _np(p["top"]) - pad
        return m


class Scale(Op):
    """Resize so the short side is L ∈ {lo..hi} (uniform), then a random SIZE x SIZE crop.

    The resize maps corner pixel centres to corner pixel centres (the align_corners=True
    convention): x_in = x_resized · (W - 1) / (W' - 1), so no sample falls outside the image.
    """

    family = "geometric"

    def out_size(self, size):
        return (self.args["size"], self.args["size"])

    def stays_inside(self, size_in):
        return self.args["short_side"][0] >= min(size_in)  # upsampling: corners map inside

    def check(self, channels, size):
        super().check(channels, size)
        s, low = self.args["size"], self.args["short_side"][0]
        if low < s:
            raise ValueError(f"scale {s}: the short side must be at least the crop size (it can be {low})")

    def draw(self, n, channels, size, g):
        low, high = self.args["short_side"]
        short = torch.randint(low, high + 1, (n,), generator=g)
        return {"short": short, "u_top": torch.rand(n, generator=g, dtype=_F64), "u_left": torch.rand(n, generator=g, dtype=_F64)}

    def offsets(self, p, size_in):
        """Resized height and width (short side L, the long one rounded), and the crop's corner."""
        h, w = size_in
        s = self.args["size"]
        ratio = _np(p["short"]) / min(h, w)
        hr, wr = np.floor(h * ratio + 0.5), np.floor(w * ratio + 0.5)
        top = np.minimum(np.floor(_np(p["u_top"]) * (hr - s + 1)), hr - s)
        left = np.minimum(np.floor(_np(p["u_left"]) * (wr - s + 1)), wr - s)
        return hr, wr, top, left

    def matrix(self, p, size_in, size_out):
        h, w = size_in
        hr, wr, top, left = self.offsets(p, size_in)
        fy = (h - 1) / np.maximum(hr - 1, 1)
        fx = (w - 1) / np.maximum(wr - 1, 1)
        m = _eye(len(hr))
        m[:, 0, 0], m[:, 0, 2] = fx, fx * left
        m[:, 1, 1], m[:, 1, 2] = fy, fy * top
        return m


class Affine(Op):
    """About the image centre c: out = c + d + R(θ)·Sh(φ)·Z(s)·(in - c).

    R(θ) = [[cos θ, sin θ], [-sin θ, cos θ]] turns counter-clockwise on screen (y points down),
    Sh(φ) = [[1, tan φ], [0, 1]] is a horizontal shear, Z(s) = s·I a zoom, and
    d = (dx, dy) with dx ~ U(-t·W, t·W), dy ~ U(-t·H, t·H) a translation in pixels.
    """

    family = "geometric"

    def draw(self, n, channels, size, g):
        h, w = size
        a = self.args
        t = a["translate"]
        return {
            "angle": _uniform(n, *a["rotate"], g),
            "dx": _uniform(n, -t * w, t * w, g),
            "dy": _uniform(n, -t * h, t * h, g),
            "zoom": _uniform(n, *a["scale"], g),
            "shear": _uniform(n, *a["shear"], g),
        }

    def matrix(self, p, size_in, size_out):
        h, w = size_in
        theta, phi = np.deg2rad(_np(p["angle"])), np.deg2rad(_np(p["shear"]))
        cos, sin, tan, zoom = np.cos(theta), np.sin(theta), np.tan(phi), _np(p["zoom"])
        # inverse of the linear part: Z^-1 · Sh^-1 · R^-1, with R^-1 = R(-θ), Sh^-1 = Sh(-φ)
        # R^-1 = [[cos, -sin], [sin, cos]], Sh^-1 = [[1, -tan], [0, 1]]:
        # Sh^-1·R^-1 = [[cos - tan·sin, -sin - tan·cos], [sin, cos]]
        a, b = (cos - tan * sin) / zoom, (-sin - tan * cos) / zoom
        c, d = sin / zoom, cos / zoom
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        ux, uy = cx + _np(p["dx"]), cy + _np(p["dy"])  # the input centre lands on c + d
        m = _eye(len(a))
        m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = a, b, cx - a * ux - b * uy
        m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = c, d, cy - c * ux - d * uy
        return m


class Color(Op):
    """Brightness, contrast, saturation, hue, applied in that order; each factor ~ U(range).

    With w the gray weights (ITU-R BT.601 luma for RGB, 1/C each otherwise), gray(x) = w·x:
      brightness b:  x' = b·x
      contrast c:    x' = c·x + (1 - c)·m·1, m = the image's mean gray (mean of gray(x) over pixels)
      saturation s:  x' = s·x + (1 - s)·gray(x)·1
      hue h:         x' = R_h·x, R_h the rotation by 2πh about the gray axis u = [1, 1, 1]/√3:
                     R_h = cos·I + sin·[u]× + (1 - cos)·u·uᵀ (red turns towards green for h > 0)
    """

    family = "color"

    @property
    def linear(self) -> bool:
        return tuple(self.args["contrast"]) == (1.0, 1.0)

    def check(self, channels, size):
        super().check(channels, size)
        if channels != 3 and (tuple(self.args["saturation"]) != (1.0, 1.0) or tuple(self.args["hue"]) != (0.0, 0.0)):
            raise ValueError(f"color saturation and hue need RGB images (3 channels), the batch has {channels}")

    def draw(self, n, channels, size, g):
        a = self.args
        return {k: _uniform(n, *a[k], g) for k in ("brightness", "contrast", "saturation", "hue")}

    def compose(self, p, state: "_ColorState") -> None:
        k = state.k
        eye = np.eye(k)
        state.scale(_np(p["brightness"]))
        state.contrast(_np(p["contrast"]))
        s = _np(p["saturation"])[:, None, None]
        if (s != 1).any():
            state.linear(s * eye + (1 - s) * np.outer(np.ones(k), state.w))
        if k == 3 and (_np(p["hue"]) != 0).any():
            state.linear(hue_matrix(_np(p["hue"])))


def hue_matrix(h) -> np.ndarray:
    """(n, 3, 3) rotations by 2πh about the gray axis [1, 1, 1]/√3 (Rodrigues' formula)."""
    angle = 2 * np.pi * np.asarray(h, dtype=np.float64)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    return cos * np.eye(3) + sin * cross + (1 - cos) * np.outer(u, u)


class Noise(Op):
    """x + ε, ε ~ N(0, std²) per element, drawn on x's device from a seed taken from the data generator."""

    family = "noise"

    def draw(self, n, channels, size, g):
        return {"seed": int(torch.randint(0, 2**62, (1,), generator=g))}

    def apply(self, x: torch.Tensor, p) -> torch.Tensor:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(p["seed"])
        return x + self.args["std"] * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


OPS: dict[str, type[Op]] = {
    "shift": Shift,
    "flip": Flip,
    "hflip": HFlip,
    "crop": Crop,
    "scale": Scale,
    "affine": Affine,
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


def _pixel_to_normalized(h: int, w: int) -> np.ndarray:
    """Pixel coordinates of an (h, w) image to grid_sample's [-1, 1] (align_corners=False)."""
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def _normalized_to_pixel(h: int, w: int) -> np.ndarray:
    return np.array([[w / 2.0, 0.0, (w - 1) / 2.0], [0.0, h / 2.0, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def is_integral(m: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether every matrix maps pixel centres to pixel centres (integer 2x3 part)."""
    part = m[:, :2, :]
    return bool((np.abs(part - np.round(part)) <= tol).all())


def _axis_aligned(m: np.ndarray) -> bool:
    """Whether x_in depends on x_out only and y_in on y_out only (flips, crops, scales)."""
    return bool((m[:, 0, 1] == 0).all() and (m[:, 1, 0] == 0).all())


def sampling_grid(theta: np.ndarray, out_size: tuple[int, int], canvases=(), device=None, dtype=torch.float32):
    """(grid, keep): F.affine_grid(theta, align_corners=False), and which output pixels to keep.

    theta (B, 2, 3), float64 numpy, maps normalized output coordinates to normalized input coordinates. Each
    canvas (B, 2, 3) maps them to the normalized coordinates of an intermediate image, whose
    frame is [-1, 1]²: output pixels that land outside one must come out zero. When everything
    is axis-aligned, the grid is built from one row and one column per sample, and such pixels
    get a grid point far outside [-1, 1] (keep is None); otherwise the grid is one batched
    product of the base grid with theta (what F.affine_grid does; a test holds the values
    equal) and keep (B, 1, H, W) says which pixels are inside every canvas.
    """
    n = theta.shape[0]
    ho, wo = out_size
    xs = (2 * torch.arange(wo, device=device, dtype=dtype) + 1) / wo - 1
    ys = (2 * torch.arange(ho, device=device, dtype=dtype) + 1) / ho - 1
    stacked = torch.from_numpy(np.concatenate([theta, *canvases], 1)).to(device, dtype)  # (B, 2 + 2K, 3)
    if _axis_aligned(theta) and all(_axis_aligned(c) for c in canvases):
        t = stacked
        px = t[:, 0::2, 0, None] * xs + t[:, 0::2, 2, None]  # (B, 1 + K, W): x of the grid, then of each canvas
        py = t[:, 1::2, 1, None] * ys + t[:, 1::2, 2, None]  # (B, 1 + K, H)
        gx, gy = px[:, 0], py[:, 0]
        if canvases:
            gx = torch.where(px[:, 1:].abs().amax(1) > 1, _OUTSIDE, gx)
            gy = torch.where(py[:, 1:].abs().amax(1) > 1, _OUTSIDE, gy)
        return torch.stack([gx[:, None, :].expand(n, ho, wo), gy[:, :, None].expand(n, ho, wo)], -1), None
    ones = torch.ones(ho, wo, device=device, dtype=dtype)
    base = torch.stack([xs.expand(ho, wo), ys[:, None].expand(ho, wo), ones]).view(3, ho * wo)
    points = torch.matmul(stacked, base)  # (B, 2 + 2K, H·W)
    grid = points[:, :2].transpose(1, 2).reshape(n, ho, wo, 2)
    if not canvases:
        return grid, None
    return grid, (points[:, 2:].abs().amax(1) <= 1).view(n, 1, ho, wo)


def warp(x: torch.Tensor, m: np.ndarray, out_size: tuple[int, int], canvases=()) -> torch.Tensor:
    """x (B, C, H, W) sampled at m·(x_out, y_out, 1): one sampling grid, one F.grid_sample.

    `m` (B, 3, 3) maps output pixel coordinates to input pixel coordinates. Each of
    `canvases`, (S (B, 3, 3), (h, w)), is an intermediate image of the unfused pipeline: output
    pixels whose point S·p falls outside its (h, w) frame are zero, as they would be had the
    intermediate image been materialized. The mode is `nearest` when every m maps pixel
    centres to pixel centres (then it is an exact copy, and equal to bilinear), else `bilinear`.
    """
    n, c, h, w = x.shape
    ho, wo = out_size
    integral = is_integral(m)
    if integral and (ho, wo) == (h, w) and not canvases and (m == np.eye(3)).all():
        return x
    to_output = _normalized_to_pixel(ho, wo)
    theta = (_pixel_to_normalized(h, w) @ m @ to_output)[:, :2, :]
    frames = [(_pixel_to_normalized(hc, wc) @ s @ to_output)[:, :2, :] for s, (hc, wc) in canvases]
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    grid, keep = sampling_grid(theta, (ho, wo), frames, work.device, work.dtype)
    out = F.grid_sample(work, grid, mode="nearest" if integral else "bilinear", padding_mode="zeros", align_corners=False)
    if keep is not None:
        out = out * keep
    return out.to(x.dtype)


def _geometric_stage(ops, params, x):
    """A run of image operations as one warp: M = A_1 · A_2 · ... · A_k (output -> input)."""
    n = x.shape[0]
    size = tuple(x.shape[-2:])
    matrices, sizes = [], []
    for op, p in zip(ops, params):
        out = op.out_size(size)
        matrices.append(op.matrix(p, size, out))
        sizes.append(out)
        size = out
    # The output of op j (j < k) is an intermediate image ("canvas"); suffix = A_{j+1} ... A_k
    # maps the final output pixels into it. It needs a check unless op j + 1 samples only
    # inside it (then the check of op j + 1's own output, or the final frame, covers it).
    canvases = []
    suffix = _eye(n)
    for j in range(len(ops) - 1, -1, -1):
        if j < len(ops) - 1 and not ops[j + 1].stays_inside(sizes[j]):
            canvases.append((suffix, sizes[j]))
        suffix = matrices[j] @ suffix
    return warp(x, suffix, size, canvases[::-1])


class _ColorState:
    """x_out = M·x + o0 + Q·x̄ per sample, x̄ the per-channel mean of the stage's input image."""

    def __init__(self, n: int, k: int):
        self.k = k
        self.w = np.array(LUMA) if k == 3 else np.full(k, 1.0 / k)
        self.m = _eye(n, k)
        self.o = np.zeros((n, k))
        self.q = np.zeros((n, k, k))
        self.uses_mean = False

    def linear(self, a: np.ndarray) -> None:
        """Then x -> a·x, a (n, k, k)."""
        self.m = a @ self.m
        self.o = (a @ self.o[:, :, None])[:, :, 0]
        self.q = a @ self.q

    def scale(self, b: np.ndarray) -> None:
        """Then x -> b·x, b (n,)."""
        self.m = b[:, None, None] * self.m
        self.o = b[:, None] * self.o
        self.q = b[:, None, None] * self.q

    def contrast(self, c: np.ndarray) -> None:
        """Then x -> c·x + (1 - c)·m·1, m the mean gray of the image at this point."""
        if (c == 1).all():
            return
        self.uses_mean = True
        # the current image's mean gray is w·((M + Q)·x̄ + o0): linear in x̄, folded into o0 and Q
        gray_of_mean = self.w @ (self.m + self.q)  # (n, k): row vector acting on x̄
        gray_offset = self.o @ self.w  # (n,)
        ones = np.ones(self.k)
        self.q = c[:, None, None] * self.q + (1 - c)[:, None, None] * ones[None, :, None] * gray_of_mean[:, None, :]
        self.m = c[:, None, None] * self.m
        self.o = c[:, None] * self.o + (1 - c)[:, None] * gray_offset[:, None] * ones


def _color_stage(ops, params, x):
    """A run of colour operations as one batched (C x C matrix, offset) per sample."""
    n, k = x.shape[:2]
    state = _ColorState(n, k)
    for op, p in zip(ops, params):
        op.compose(p, state)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    flat = work.reshape(n, k, -1)
    matrix = torch.from_numpy(state.m).to(x.device, work.dtype)
    offset = torch.from_numpy(state.o).to(x.device, work.dtype)
    if state.uses_mean:
        offset = offset + (torch.from_numpy(state.q).to(x.device, work.dtype) @ flat.mean(-1, keepdim=True)).squeeze(-1)
    out = torch.baddbmm(offset.unsqueeze(-1), matrix, flat)
    return out.view_as(x).to(x.dtype)


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


STAGES: dict[str, Callable] = {"sequence": _sequence_stage, "image": _image_stage, "noise": _noise_stage}
STAGE_OF = {"sequence": "sequence", "geometric": "image", "color": "image", "noise": "noise"}


class Augmenter:
    """The `augment` block as one callable: x (B, ...) -> augmented x, in training only.

    The operations are grouped into stages, in spec order: a maximal run of sequence
    operations (one gather), a maximal run of image operations (one warp, then one colour
    matrix), or one `noise`. An image run takes every geometric and colour operation in a
    row, except that a geometric operation does not join a run that holds a colour operation
    with contrast (contrast needs the mean of the image as it is at that point, so the warp
    cannot move in front of it): a new run starts there.

    `fuse=False` runs every operation on its own (one warp per geometric operation), which
    the tests compare the fused pipeline against.
    """

    def __init__(self, steps: tuple[ir.Step, ...], fuse: bool = True):
        self.steps = tuple(steps)
        unknown = [s.kind for s in self.steps if s.kind not in OPS]
        if unknown:
            raise NotImplementedError(f"augmentation '{unknown[0]}' is not available")
        self.ops = [OPS[s.kind](s) for s in self.steps]
        self.fuse = fuse
        self.stages: list[tuple[str, list[int]]] = []  # (kind, indices of its operations)
        for i, op in enumerate(self.ops):
            kind = STAGE_OF[op.family]
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
            op.check(channels, size)
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


# ---- test-time augmentation ------------------------------------------------------------------------------


def tta_enabled(evaluate: ir.Evaluate) -> bool:
    return bool(evaluate.tta_hflip or evaluate.crops > 1 or evaluate.scales)


def tta_views(evaluate: ir.Evaluate) -> int:
    """How many views of each test image `tta_logits` averages (1 when there is no TTA)."""
    if not tta_enabled(evaluate):
        return 1
    positions = 5 if evaluate.crops in (5, 10) else 1
    mirrors = 2 if (evaluate.tta_hflip or evaluate.crops == 10) else 1
    return max(1, len(evaluate.scales)) * positions * mirrors


def tta_pad(train_steps: tuple[ir.Step, ...]) -> int:
    """The zero padding of the training `crop` (the first one), 0 when there is none."""
    return next((int(s.args["pad"]) for s in train_steps if s.kind == "crop"), 0)


def resize_short_side(x: torch.Tensor, short: int) -> torch.Tensor:
    """x (B, C, H, W) resized (bilinear) so that min(H, W) becomes `short`, like the training `scale`."""
    h, w = x.shape[-2:]
    if min(h, w) == short:
        return x
    ratio = short / min(h, w)
    size = (math.floor(h * ratio + 0.5), math.floor(w * ratio + 0.5))
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return F.interpolate(work, size=size, mode="bilinear", align_corners=True).to(x.dtype)


def tta_crops(h: int, w: int, height: int, width: int, crops: int) -> list[tuple[int, int]]:
    """(top, left) of the view windows of size (height, width) in an (h, w) image:
    the centre alone (crops=1), or the four corners and the centre (crops=5 or 10)."""
    centre = ((h - height) // 2, (w - width) // 2)
    if crops == 1:
        return [centre]
    return [(0, 0), (0, w - width), (h - height, 0), (h - height, w - width), centre]


def tta_logits(
    model_forward: Callable[[torch.Tensor], Any], x: torch.Tensor, evaluate: ir.Evaluate, train_steps: tuple[ir.Step, ...]
) -> torch.Tensor | None:
    """Log of the softmax averaged over the test-time views of x, or None without TTA.

    x (B, C, H, W) is a batch of (normalized) test images; `model_forward(x)` gives logits
    (B, classes) (or a dict of them, one per head: then a dict comes back). The views:

    - for each scale s of `scales [...]` (or only the image as it is, without `scales`), the
      image resized so its short side is s (bilinear, corners aligned like the training
      `scale`; s must be at least min(H, W)), then zero-padded by the `pad` of the training
      `crop` (0 without one);
    - from that, windows of the model's input size (H, W): the centre (crops=1), or the four
      corners and the centre (crops=5 and 10); the centre is at ((h' - H) // 2, (w' - W) // 2);
    - each window also mirrored left-right with `tta hflip` or crops=10 (crops=10 is
      crops=5 with its mirror images, so `tta hflip crops=10` has the same 10 views).

    Each view goes through the model as a batch of B images (one call per view, so memory
    stays that of plain evaluation); the result is log(mean over the views of
    softmax(logits)), of shape (B, classes).
    """
    if not tta_enabled(evaluate):
        return None
    n, c, h, w = x.shape
    pad = tta_pad(train_steps)
    mirrors = evaluate.tta_hflip or evaluate.crops == 10
    log_probs: list[Any] = []
    for short in evaluate.scales or (None,):
        image = x
        if short is not None:
            if short < min(h, w):
                raise ValueError(f"scale {short} is smaller than the images' short side {min(h, w)}")
            image = resize_short_side(x, short)
        if pad:
            image = F.pad(image, (pad, pad, pad, pad))
        hp, wp = image.shape[-2:]
        views = [image[..., top : top + h, left : left + w] for top, left in tta_crops(hp, wp, h, w, evaluate.crops)]
        if mirrors:
            views += [v.flip(-1) for v in views]
        for view in views:  # one forward pass per view: memory as in plain evaluation
            out = model_forward(view)
            if isinstance(out, dict):
                log_probs.append({k: F.log_softmax(v.float(), dim=1) for k, v in out.items()})
            else:
                log_probs.append(F.log_softmax(out.float(), dim=1))
    if isinstance(log_probs[0], dict):
        return {k: _mean_of_probs(torch.stack([lp[k] for lp in log_probs])) for k in log_probs[0]}
    return _mean_of_probs(torch.stack(log_probs))


def _mean_of_probs(log_probs: torch.Tensor) -> torch.Tensor:
    """log(mean_v exp(log_probs[v])) for log_probs (V, B, classes), computed stably."""
    return torch.logsumexp(log_probs, dim=0) - math.log(log_probs.shape[0])
