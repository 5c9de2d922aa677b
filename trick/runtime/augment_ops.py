"""The augmentation operations: what each one draws per sample, and its share of the fused work.

The `Augmenter` (augment.py) looks these classes up by the name of the step's kind (`OPS`
there) and runs them in fused stages; the pixel-coordinate matrices of the geometric ones are
applied by `geometry.warp`, and the colour ones compose into a `ColorState`.
docs/augmentation.md gives the formulas.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

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

    The resize maps corner pixel centres to corner pixel centres (the align_corners=True
    convention): x_in = x_resized · (W - 1) / (W' - 1), so no sample falls outside the image.
    """

    family, stage = "geometric", "image"

    def out_size(self, size):
        return (self.args["size"], self.args["size"])

    def stays_inside(self, size_in):
        return self.args["short_side"][0] >= min(size_in)  # upsampling: corners map inside

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

    With w the gray weights (ITU-R BT.601 luma for RGB, 1/C each otherwise), gray(x) = w·x:
      brightness b:  x' = b·x
      contrast c:    x' = c·x + (1 - c)·m·1, m = the image's mean gray (mean of gray(x) over pixels)
      saturation s:  x' = s·x + (1 - s)·gray(x)·1
      hue h:         x' = R_h·x, R_h the rotation by 2πh about the gray axis u = [1, 1, 1]/√3:
                     R_h = cos·I + sin·[u]× + (1 - cos)·u·uᵀ (red turns towards green for h > 0)
    """

    family, stage = "color", "image"

    @property
    def linear(self) -> bool:
        return tuple(self.args["contrast"]) == (1.0, 1.0)

    def draw(self, n, channels, size, g):
        a = self.args
        return {k: _uniform(n, *a[k], g) for k in ("brightness", "contrast", "saturation", "hue")}

    def compose(self, p, state: ColorState) -> None:
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
