"""Sampling images at per-sample maps of their pixel coordinates: one grid, one grid_sample.

The maps are affine, or projective (homographies) once a `warp` is among the geometric steps.

Pixel i is centred at coordinate i and covers [i - 0.5, i + 0.5]; x is the column, y the row
(pointing down). A matrix (B, 3, 3) maps the homogeneous pixel coordinates (x, y, 1) of the
output to those of the input ("where does this output pixel come from").

`warp` samples at one matrix per sample. `warp_chain` samples at a chain of them, with the
coordinates clamped into a frame between two links: that is how a resize (`scale`) is fused,
since F.interpolate (and torchvision's resize) clamps the source coordinate into the image it
resizes (its border pixels extend outwards) where the rest of the pipeline fills with zeros.
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


# ---- chains with clamps ------------------------------------------------------------------------------


def warp_chain(x: torch.Tensor, pieces, out_size: tuple[int, int]) -> torch.Tensor:
    """x (B, C, H, W) sampled at a chain of maps, from the output towards the input.

    Each piece is (m, canvases, clamp): `m` (B, 3, 3) maps the current points (pixel
    coordinates; at first those of the output pixels) to the next frame; each canvas
    (S (B, 3, 3), (h, w)) maps the current points into an intermediate image, and output
    pixels whose point falls outside that frame are zero; `clamp` (h, w), when not None,
    clamps the points, once mapped by m, into [0, w - 1] x [0, h - 1] (as F.interpolate
    clamps its source coordinates). A single piece without a clamp is `warp`. The mode is
    `nearest` when every map takes pixel centres to pixel centres, else `bilinear`; one
    grid_sample in either case.
    """
    if len(pieces) == 1 and pieces[0][2] is None:
        m, canvases, _ = pieces[0]
        return warp(x, m, out_size, canvases)
    h, w = x.shape[-2:]
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    maps = [m for m, _, _ in pieces] + [s for _, canvases, _ in pieces for s, _ in canvases]
    integral = all(_affine(m) for m in maps) and all(is_integral(m) for m, _, _ in pieces)
    if all(_affine(m) and _axis_aligned(m) for m in maps):
        grid, keep = _chain_axis_aligned(pieces, (h, w), out_size, work.device, work.dtype)
    else:
        grid, keep = _chain_general(pieces, (h, w), out_size, work.device, work.dtype)
    out = F.grid_sample(work, grid, mode="nearest" if integral else "bilinear", padding_mode="zeros", align_corners=False)
    if keep is not None:
        out = out * keep
    return out.to(x.dtype)


def _tensor(m: np.ndarray, device, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(m)).to(device, dtype)


def _chain_axis_aligned(pieces, in_size, out_size, device, dtype):
    """The grid of an axis-aligned chain from one row and one column per sample; pixels
    outside a canvas get a grid point far outside [-1, 1] (zeros), after every clamp."""
    h, w = in_size
    ho, wo = out_size
    n = pieces[0][0].shape[0]
    px = torch.arange(wo, device=device, dtype=dtype).expand(n, wo)
    py = torch.arange(ho, device=device, dtype=dtype).expand(n, ho)
    kx = torch.ones(n, wo, dtype=torch.bool, device=device)
    ky = torch.ones(n, ho, dtype=torch.bool, device=device)
    for m, canvases, clamp in pieces:
        for s, (hc, wc) in canvases:
            t = _tensor(s, device, dtype)
            cx = t[:, 0, 0, None] * px + t[:, 0, 2, None]
            cy = t[:, 1, 1, None] * py + t[:, 1, 2, None]
            kx &= (cx >= -0.5) & (cx <= wc - 0.5)
            ky &= (cy >= -0.5) & (cy <= hc - 0.5)
        t = _tensor(m, device, dtype)
        px = t[:, 0, 0, None] * px + t[:, 0, 2, None]
        py = t[:, 1, 1, None] * py + t[:, 1, 2, None]
        if clamp is not None:
            px, py = px.clamp(0, clamp[1] - 1), py.clamp(0, clamp[0] - 1)
    gx = torch.where(kx, (2 * px + 1) / w - 1, _OUTSIDE)
    gy = torch.where(ky, (2 * py + 1) / h - 1, _OUTSIDE)
    return torch.stack([gx[:, None, :].expand(n, ho, wo), gy[:, :, None].expand(n, ho, wo)], -1), None


def _chain_general(pieces, in_size, out_size, device, dtype):
    """The grid of any chain (affine or projective maps), point by point, and which output
    pixels to keep (inside every canvas, and never behind the horizon of a homography)."""
    h, w = in_size
    ho, wo = out_size
    n = pieces[0][0].shape[0]
    xs = torch.arange(wo, device=device, dtype=dtype)
    ys = torch.arange(ho, device=device, dtype=dtype)
    points = torch.stack([xs.expand(ho, wo), ys[:, None].expand(ho, wo), torch.ones(ho, wo, device=device, dtype=dtype)]).view(1, 3, ho * wo)
    points = points.expand(n, 3, ho * wo)
    keep = torch.ones(n, 1, ho * wo, dtype=torch.bool, device=device)

    def mapped(m, points):
        q = torch.matmul(_tensor(m, device, dtype), points)
        if _affine(m):
            return q, None
        ahead = q[:, 2:] > 0
        return torch.cat([q[:, :2] / torch.where(ahead, q[:, 2:], torch.ones_like(q[:, 2:])), torch.ones_like(q[:, 2:])], 1), ahead

    for m, canvases, clamp in pieces:
        for s, (hc, wc) in canvases:
            q, ahead = mapped(s, points)
            inside = (q[:, :1] >= -0.5) & (q[:, :1] <= wc - 0.5) & (q[:, 1:2] >= -0.5) & (q[:, 1:2] <= hc - 0.5)
            keep &= inside if ahead is None else inside & ahead
        points, ahead = mapped(m, points)
        if ahead is not None:
            keep &= ahead
        if clamp is not None:
            points = torch.cat([points[:, :1].clamp(0, clamp[1] - 1), points[:, 1:2].clamp(0, clamp[0] - 1), points[:, 2:]], 1)
    gx = (2 * points[:, 0] + 1) / w - 1
    gy = (2 * points[:, 1] + 1) / h - 1
    grid = torch.stack([gx, gy], -1).view(n, ho, wo, 2)
    grid = torch.where(keep.view(n, ho, wo, 1), grid, torch.full_like(grid, _OUTSIDE))
    return grid, keep.view(n, 1, ho, wo).to(dtype)
