"""Sampling images at per-sample maps of their pixel coordinates: one grid, one grid_sample.

The maps are affine, or projective (homographies) once a `warp` is among the geometric steps.

Pixel i is centred at coordinate i and covers [i - 0.5, i + 0.5]; x is the column, y the row
(pointing down). A matrix (B, 3, 3) maps the homogeneous pixel coordinates (x, y, 1) of the
output to those of the input ("where does this output pixel come from").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_OUTSIDE = -4.0  # a normalized grid coordinate far enough outside [-1, 1] to sample zeros


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
    if not (_affine(m) and all(_affine(s) for s, _ in canvases)):  # a `warp` in the run
        return _warp_projective(x, m, out_size, canvases)
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


def _affine(m: np.ndarray) -> bool:
    """Whether every matrix's last row is (0, 0, 1): an affine map, not a homography."""
    return bool((m[:, 2, 0] == 0).all() and (m[:, 2, 1] == 0).all() and (m[:, 2, 2] == 1).all())


def _project(t: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) maps of the base points (3, P): (B, 2, P) after the division by the third
    coordinate; a point that lands on or behind the horizon gets a coordinate far outside."""
    points = torch.matmul(t, base)
    w = points[:, 2:]
    ahead = w > 0
    xy = points[:, :2] / torch.where(ahead, w, torch.ones_like(w))
    return torch.where(ahead, xy, torch.full_like(xy, _OUTSIDE))


def _warp_projective(x: torch.Tensor, m: np.ndarray, out_size: tuple[int, int], canvases=()) -> torch.Tensor:
    """`warp` for homographies: the grid is the projection T·(x, y, 1) / w of the normalized
    output coordinates, T = (input pixels -> normalized) · m · (normalized -> output pixels);
    a canvas keeps the output pixels whose projected point lies inside its frame."""
    n, c, h, w = x.shape
    ho, wo = out_size
    to_output = _normalized_to_pixel(ho, wo)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    maps = np.concatenate([_pixel_to_normalized(h, w) @ m @ to_output] + [_pixel_to_normalized(hc, wc) @ s @ to_output for s, (hc, wc) in canvases], 1)
    t = torch.from_numpy(maps).to(work.device, work.dtype).view(n, -1, 3, 3)  # (B, 1 + K, 3, 3)
    xs = (2 * torch.arange(wo, device=work.device, dtype=work.dtype) + 1) / wo - 1
    ys = (2 * torch.arange(ho, device=work.device, dtype=work.dtype) + 1) / ho - 1
    base = torch.stack([xs.expand(ho, wo), ys[:, None].expand(ho, wo), torch.ones(ho, wo, device=work.device, dtype=work.dtype)]).view(3, ho * wo)
    points = _project(t.reshape(-1, 3, 3), base).view(n, -1, 2, ho * wo)  # (B, 1 + K, 2, H·W)
    grid = points[:, 0].transpose(1, 2).reshape(n, ho, wo, 2)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if canvases:
        out = out * (points[:, 1:].abs().amax((1, 2)) <= 1).view(n, 1, ho, wo).to(out.dtype)
    return out.to(x.dtype)
