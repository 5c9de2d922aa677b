"""The augmentation operations: what each one draws per sample, and its share of the fused work.

The `Augmenter` (augment.py) looks these classes up by the name of the step's kind (`OPS`
there) and runs them in fused stages; the pixel-coordinate matrices of the geometric ones are
applied by `geometry.warp` (`warp_chain` where a `scale` clamps), and the colour ones run as
torchvision's definitions: `blend` and `hue_shift`, or composed into a `ColorState`.
docs/augmentation.md gives the formulas.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..compiler import ir

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B in the gray (luma) of a pixel

_F64 = torch.float64


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
# An operation knows its family and the fused stage that runs it, what it does to the size of
# a sample, how it draws its per-sample parameters (CPU tensors, in a fixed order), and its
# share of the fused work: a pixel-coordinate matrix (geometric), an index map (sequence), or
# a colour matrix; the matrices are float64 numpy arrays (B, 3, 3), built on the CPU and sent
# to the device once.
#
# Geometric matrices map the homogeneous pixel coordinates (x, y, 1) of the operation's OUTPUT
# to those of its INPUT ("where does this output pixel come from"), with pixel i centred at
# coordinate i and covering [i - 0.5, i + 0.5]; x is the column, y the row (pointing down).


class Op(ABC):
    family = ""  # sequence, geometric, color or noise
    stage = ""  # the fused stage that runs it (augment.STAGES): sequence, image or noise

    def __init__(self, step: ir.Step):
        self.step, self.args, self.kind = step, step.args, step.kind

    def out_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        return size

    @abstractmethod
    def draw(self, n: int, channels: int, size: tuple[int, ...], g: torch.Generator) -> dict[str, Any]:
        """The per-sample parameters of a batch of n samples of this size (CPU tensors, drawn from g)."""

    def stays_inside(self, size_in: tuple[int, ...]) -> bool:
        """Whether every point of the op's output frame comes from inside its input frame
        (then the input frame needs no check of its own when the op's output is checked)."""
        return False

    # whether a colour op is a linear map of each pixel's channels (commutes with warps)
    linear = False
    # whether a geometric op clamps its source coordinates into its input frame (a resize)
    clamps = False
    # the bounds colour results are clamped to ((0, 1) for data in [0, 1]), set by the Augmenter
    clamp: tuple[float, float] | None = None

    def materializes(self, size_in) -> bool:
        """Whether a geometric op must be computed on its own, not as a map of coordinates."""
        return False


class Shift(Op):
    """Sequence translation by s ∈ {-max..max}: out[i] = in[i - s], zeros where i - s is outside."""

    family, stage = "sequence", "sequence"

    def draw(self, n, channels, size, g):
        m = self.args["max"]
        return {"s": torch.randint(-m, m + 1, (n,), generator=g)}

    def index_map(self, p, length):
        return torch.ones_like(p["s"]), -p["s"]


class Flip(Op):
    """Sequence reversal with probability p: out[i] = in[L - 1 - i]."""

    family, stage = "sequence", "sequence"

    def draw(self, n, channels, size, g):
        return {"flip": torch.rand(n, generator=g) < self.args["p"]}

    def index_map(self, p, length):
        f = p["flip"].long()
        return 1 - 2 * f, f * (length - 1)


class HFlip(Op):
    """Mirror left-right with probability p: x_in = W - 1 - x_out."""

    family, stage = "geometric", "image"

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

    family, stage = "geometric", "image"

    def out_size(self, size):
        return (self.args["size"], self.args["size"])

    def stays_inside(self, size_in):
        return self.args["pad"] == 0

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

    torchvision's `Resize(L)` then `RandomCrop(SIZE)` on tensors: the long side becomes
    int(long · L / short) (truncated), the resize is bilinear with half-pixel centres
    (align_corners=False: x_in = (x_resized + 0.5) · W / W' - 0.5, the source coordinate
    clamped into [0, W - 1] as F.interpolate clamps it), antialiased when it shrinks. An
    enlarging resize is a point sample, fused into the run's warp (`clamps`); one that can
    shrink (lo < the input's short side) is done on its own by F.interpolate(antialias=True),
    a call per short side L in the batch (`resize_crop`).
    """

    family, stage = "geometric", "image"
    clamps = True  # its source coordinates are clamped into its input frame

    def out_size(self, size):
        return (self.args["size"], self.args["size"])

    def stays_inside(self, size_in):
        return True  # the clamp keeps every source point inside the input

    def materializes(self, size_in) -> bool:
        """Whether some L shrinks the image (then it is antialiased, which no warp can do)."""
        return self.args["short_side"][0] < min(size_in)

    def draw(self, n, channels, size, g):
        low, high = self.args["short_side"]
        short = torch.randint(low, high + 1, (n,), generator=g)
        return {"short": short, "u_top": torch.rand(n, generator=g, dtype=_F64), "u_left": torch.rand(n, generator=g, dtype=_F64)}

    def offsets(self, p, size_in):
        """Resized height and width (torchvision's arithmetic: the short side L, the long one
        int(long · L / short)), and the crop's corner (uniform over the positions that fit)."""
        h, w = size_in
        s = self.args["size"]
        short = p["short"].numpy().astype(np.int64)
        small, large = min(h, w), max(h, w)
        long_side = (short * large) // small  # = int(L * long / short): exact in integers
        hr, wr = (short, long_side) if h <= w else (long_side, short)
        hr, wr = hr.astype(np.float64), wr.astype(np.float64)
        top = np.minimum(np.floor(_np(p["u_top"]) * (hr - s + 1)), hr - s)
        left = np.minimum(np.floor(_np(p["u_left"]) * (wr - s + 1)), wr - s)
        return hr, wr, top, left

    def matrix(self, p, size_in, size_out):
        h, w = size_in
        hr, wr, top, left = self.offsets(p, size_in)
        fy, fx = h / hr, w / wr
        m = _eye(len(hr))
        m[:, 0, 0], m[:, 0, 2] = fx, fx * (left + 0.5) - 0.5
        m[:, 1, 1], m[:, 1, 2] = fy, fy * (top + 0.5) - 0.5
        return m

    def resize_crop(self, x: torch.Tensor, p) -> torch.Tensor:
        """The resize (F.interpolate, bilinear, align_corners=False, antialias=True, one call
        per short side L in the batch) and the crop (an exact copy of each window)."""
        n, c, h, w = x.shape
        s = self.args["size"]
        hr, wr, top, left = self.offsets(p, (h, w))
        short = p["short"]
        out = x.new_empty(n, c, s, s)
        for value in torch.unique(short).tolist():
            rows = torch.nonzero(short == value).flatten()
            i = int(rows[0])
            size = (int(hr[i]), int(wr[i]))
            part = x[rows.to(x.device)]
            if size != (h, w):
                part = F.interpolate(part, size=size, mode="bilinear", align_corners=False, antialias=True)
            ys = torch.from_numpy(top[rows.numpy()]).long()[:, None] + torch.arange(s)
            xs = torch.from_numpy(left[rows.numpy()]).long()[:, None] + torch.arange(s)
            ys, xs = ys.to(x.device), xs.to(x.device)
            k = torch.arange(len(rows), device=x.device)
            window = part[k[:, None, None], :, ys[:, :, None], xs[:, None, :]]  # (b, s, s, c)
            out[rows.to(x.device)] = window.permute(0, 3, 1, 2)
        return out


class Affine(Op):
    """About the image centre c: out = c + d + R(θ)·Sh(φ)·Z(s)·(in - c).

    R(θ) = [[cos θ, sin θ], [-sin θ, cos θ]] turns counter-clockwise on screen (y points down),
    Sh(φ) = [[1, tan φ], [0, 1]] is a horizontal shear, Z(s) = s·I a zoom, and
    d = (dx, dy) with dx ~ U(-t·W, t·W), dy ~ U(-t·H, t·H) a translation in pixels.
    """

    family, stage = "geometric", "image"

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


class Warp(Op):
    """Perspective: corner k of the image, c_k, moves inward to e_k = c_k + d·u_k·((W-1)/2, (H-1)/2)
    (u_k ~ U(0, 1)², pointing inward); the output is the input seen through the homography M with
    M·e_k ∝ c_k, so what was at the corners appears at the moved corners (with probability p)."""

    family, stage = "geometric", "image"

    def draw(self, n, channels, size, g):
        return {"warp": torch.rand(n, generator=g) < self.args["p"], "u": torch.rand(n, 4, 2, generator=g, dtype=_F64)}

    def matrix(self, p, size_in, size_out):
        h, w = size_in
        corners = np.array([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]])
        inward = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
        half = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        moved = corners + self.args["distortion"] * _np(p["u"]) * half * inward  # (B, 4, 2)
        m = homography(moved, np.broadcast_to(corners, moved.shape))
        m[~_np(p["warp"]).astype(bool)] = np.eye(3)
        return m


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(B, 3, 3) homographies M with M·(src_k, 1) ∝ (dst_k, 1) for the 4 point pairs of each
    sample (B, 4, 2): the 8x8 linear system of the direct linear transform, with M[2, 2] = 1."""
    n = src.shape[0]
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]
    zero, one = np.zeros_like(x), np.ones_like(x)
    rows_u = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)  # (B, 4, 8)
    rows_v = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    a = np.concatenate([rows_u, rows_v], 1)  # (B, 8, 8)
    b = np.concatenate([u, v], 1)  # (B, 8)
    h = np.linalg.solve(a, b[..., None])[..., 0]
    return np.concatenate([h, np.ones((n, 1))], 1).reshape(n, 3, 3)


class Color(Op):
    """Brightness, contrast, saturation, hue, applied in that order; each factor ~ U(range).

    torchvision's definitions (`adjust_brightness`, `adjust_contrast`, `adjust_saturation`,
    `adjust_hue`), with w the gray weights (ITU-R BT.601 luma for RGB, 1/C each otherwise),
    gray(x) = w·x:
      brightness b:  x' = b·x
      contrast c:    x' = c·x + (1 - c)·m·1, m = the image's mean gray (mean of gray(x) over pixels)
      saturation s:  x' = s·x + (1 - s)·gray(x)·1
      hue h:         RGB -> HSV, H' = (H + h) mod 1, HSV -> RGB (h in turns)
    On data in [0, 1] (`clamp` set) every factor but hue is followed by a clamp into [0, 1],
    as torchvision's `_blend` does, so the factors run one after another; otherwise the first
    three compose into one matrix (`ColorState`) and nothing is clamped. A factor whose range
    is the neutral one (1, or 0 for hue) is skipped.
    """

    family, stage = "color", "image"
    FACTORS = (("brightness", (1.0, 1.0)), ("contrast", (1.0, 1.0)), ("saturation", (1.0, 1.0)), ("hue", (0.0, 0.0)))

    @property
    def linear(self) -> bool:
        """A linear map of each pixel's channels (so it commutes with warps): no contrast (it
        needs the image's mean), no hue (HSV is not linear), and no clamping."""
        if self.clamp is not None:
            return not self.factors()
        return tuple(self.args["contrast"]) == (1.0, 1.0) and tuple(self.args["hue"]) == (0.0, 0.0)

    def factors(self) -> list[str]:
        """The factors this op applies (those whose range is not the neutral one), in order."""
        return [k for k, neutral in self.FACTORS if tuple(self.args[k]) != neutral]

    def draw(self, n, channels, size, g):
        a = self.args
        return {k: _uniform(n, *a[k], g) for k in ("brightness", "contrast", "saturation", "hue")}


def gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): the luma w·x of RGB images (BT.601), the channel mean of others."""
    if x.shape[1] == 3:
        w = torch.tensor(LUMA, device=x.device, dtype=x.dtype)
        return torch.einsum("c,bchw->bhw", w, x).unsqueeze(1)
    return x.mean(1, keepdim=True)


def _per_sample(v: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(v).to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))


def blend(x: torch.Tensor, kind: str, f: np.ndarray) -> torch.Tensor:
    """One of brightness, contrast, saturation with per-sample factors f (n,): f·x + (1 - f)·other."""
    f = _per_sample(f, x)
    if kind == "brightness":
        return x * f
    other = gray(x)
    if kind == "contrast":
        other = other.mean((-2, -1), keepdim=True)
    return f * x + (1 - f) * other


def hue_shift(x: torch.Tensor, h: np.ndarray) -> torch.Tensor:
    """torchvision's adjust_hue, batched: RGB -> HSV, hue + h (turns, per sample) mod 1, HSV -> RGB.

    With M, m the largest and smallest channel of a pixel and Δ = M - m, each channel scaled
    to u = (x - m) / Δ in [0, 1] (the largest exactly 1, so floor(u) says which it is): the hue
    in sixths is torchvision's `_rgb2hsv`, (g - b) where R is largest, 2 + (b - r) where G is
    (and R is not), 4 + (r - g) otherwise (in u's). The way back is HSV -> RGB in closed
    form: channel n (5 for R, 3 for G, 1 for B) = M - Δ·clamp(min(k, 4 - k), 0, 1),
    k = (n + 6·H') mod 6, written m + Δ·clamp(|((k + 1) mod 6) - 3| - 1, 0, 1). For inputs in
    [0, 1] this is torchvision's `_hsv2rgb` (to float rounding); for any input it keeps each
    pixel's largest and smallest value. Only arithmetic, mostly in place (comparisons,
    `where` and `remainder` cost several times as much on the CPU).
    """
    maxc = x.amax(1, keepdim=True)
    minc = x.amin(1, keepdim=True)
    chroma = maxc.sub_(minc)
    unit = torch.sub(x, minc).div_(torch.clamp_min(chroma, torch.finfo(x.dtype).tiny))  # gray pixels: 0 / tiny = 0
    r, g, b = unit[:, 0:1], unit[:, 1:2], unit[:, 2:3]
    largest = torch.floor(unit[:, :2])  # 1 where R (G) is a largest channel, else 0
    sixths = torch.sub(r, g).add_(4.0)
    other = torch.sub(b, r).add_(2.0)
    sixths.lerp_(other, largest[:, 1:2])
    sixths.lerp_(torch.sub(g, b, out=other), largest[:, 0:1])
    sixths.add_(_per_sample(6.0 * np.mod(np.asarray(h, dtype=np.float64), 1.0), sixths))  # 6·H' in [-1, 11), not wrapped
    y = torch.add(sixths, torch.tensor([6.0, 4.0, 2.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1), out=unit)  # k + 1, in [1, 17)
    # |((y) mod 6) - 3| without a remainder: the folds |y - 6|, then |· - 6|, hold it for y in [-6, 18]
    y.sub_(6.0).abs_().sub_(6.0).abs_().sub_(3.0).abs_().sub_(1.0).clamp_(0.0, 1.0)
    return y.mul_(chroma).add_(minc)


class Noise(Op):
    """x + ε, ε ~ N(0, std²) per element, drawn on x's device from a seed taken from the data generator."""

    family, stage = "noise", "noise"

    def draw(self, n, channels, size, g):
        return {"seed": int(torch.randint(0, 2**62, (1,), generator=g))}

    def apply(self, x: torch.Tensor, p) -> torch.Tensor:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(p["seed"])
        return x + self.args["std"] * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


class ColorState:
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

    def brightness(self, b: np.ndarray) -> None:
        self.scale(b)

    def saturation(self, s: np.ndarray) -> None:
        """Then x -> s·x + (1 - s)·gray(x)·1."""
        k = self.k
        s = s[:, None, None]
        self.linear(s * np.eye(k) + (1 - s) * np.outer(np.ones(k), self.w))

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
