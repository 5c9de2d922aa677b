"""Test-time augmentation, the `evaluate` block's `tta` and `scales`: flips, corner and centre
crops and several scales of each test image, averaging the softmax outputs of the views.
docs/augmentation.md gives the formulas.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..compiler import ir


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


def resized_size(h: int, w: int, short: int) -> tuple[int, int]:
    """torchvision's size arithmetic for `Resize(short)`: the short side becomes `short`, the
    long one int(long · short / min(h, w)) (truncated)."""
    small, large = min(h, w), max(h, w)
    long_side = short * large // small  # = int(short * large / small), exactly
    return (short, long_side) if h <= w else (long_side, short)


def resize_short_side(x: torch.Tensor, short: int) -> torch.Tensor:
    """x (B, C, H, W) resized so that min(H, W) becomes `short`: torchvision's tensor `resize`
    (its size arithmetic, bilinear, align_corners=False, antialias=True), like the training `scale`."""
    h, w = x.shape[-2:]
    size = resized_size(h, w, short)
    if size == (h, w):
        return x
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return F.interpolate(work, size=size, mode="bilinear", align_corners=False, antialias=True).to(x.dtype)


def tta_crops(h: int, w: int, height: int, width: int, crops: int) -> list[tuple[int, int]]:
    """(top, left) of the view windows of size (height, width) in an (h, w) image:
    the centre alone (crops=1), or the four corners and the centre (crops=5 or 10), as
    torchvision's `center_crop` and `five_crop` place them (the centre rounded, not floored)."""
    centre = (round((h - height) / 2.0), round((w - width) / 2.0))  # torchvision's int(round(...)): half to even
    if crops == 1:
        return [centre]
    return [(0, 0), (0, w - width), (h - height, 0), (h - height, w - width), centre]


def tta_logits(
    model_forward: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    evaluate: ir.Evaluate,
    train_steps: tuple[ir.Step, ...],
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor | None:
    """Log of the softmax averaged over the test-time views of x, or None without TTA.

    x (B, C, H, W) is a batch of test images on the data's own scale (raw, as the training
    augmentation sees them); each view is passed through `normalize` (the splits'
    Normalizer; None: the views go to the model as they are) before `model_forward`, which
    gives logits (B, classes) (or a dict of them, one per head: then a dict comes back). The views:

    - for each scale s of `scales [...]` (or only the image as it is, without `scales`), the
      image resized so its short side is s (torchvision's resize: bilinear, half-pixel
      centres, the long side int(long · s / short), like the training `scale`; the compiler
      has checked that s is at least min(H, W)), then zero-padded by the `pad` of the
      training `crop` (0 without one);
    - from that, windows of the model's input size (H, W): the centre (crops=1), or the four
      corners and the centre (crops=5 and 10); the centre is at
      (round((h' - H) / 2), round((w' - W) / 2)), as torchvision's center_crop puts it;
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
            image = resize_short_side(x, short)
        if pad:
            image = F.pad(image, (pad, pad, pad, pad))
        hp, wp = image.shape[-2:]
        views = [image[..., top : top + h, left : left + w] for top, left in tta_crops(hp, wp, h, w, evaluate.crops)]
        if mirrors:
            views += [v.flip(-1) for v in views]
        for view in views:  # one forward pass per view: memory as in plain evaluation
            out = model_forward(view if normalize is None else normalize(view))
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
