"""The training augmentation as users look at it: `Program.augment` and `trickc preview`.

    augment_batch(steps, input_shape, x, seed, generator)   what `Program.augment` runs
    write_preview(program, path, n, seed)                   the picture of `trickc preview`

`augment_batch` is the trainer's augmentation, nothing else: `Augmenter(plan.augment)` on a
batch of raw inputs (before `normalize`), its parameters drawn from a CPU torch.Generator,
so that for the same generator state it gives exactly what a training step gets.

`write_preview` loads the training split as a run does (`load_splits` with the run's seed and
the model's input shape; the normalization left out, since augmentation works on the raw
data), takes its first `n` samples, augments them with `augment_batch` and draws originals
and augmented samples side by side:

- images [C, H, W]: a grid, each original above its augmented version; RGB for 3 channels,
  gray for 1 (the mean of the channels for other counts). Both are shown on the originals'
  value range, and values outside it (a brightness of 1.5, say) are clipped for display;
- sequences [C, L] and other vectors: one panel per sample, the original as a thick pale
  curve and the augmented sample as a thin one over it, one colour per channel;
- points in the plane [2]: one scatter, each original (hollow) joined to its augmented point
  (filled), coloured by class.

A spec without an `augment` block gets the originals alone. Matplotlib draws on the Agg
canvas directly, as in report.py, and is imported only when a picture is drawn.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..compiler import ir
from ..dsl.diagnostics import TrickUsageError
from .augment import Augmenter
from .data import load_splits, unit_range_clamp
from .report import _figure

# ---- the API --------------------------------------------------------------------------------------------


def _shape(shape, first: str | None = None) -> str:
    """[5, 16, 16]; with `first`, the batch shape [N, 3, 16, 16] of samples of this shape."""
    return "[" + ", ".join(([first] if first else []) + [str(d) for d in shape]) + "]"


def augment_batch(steps: tuple[ir.Step, ...], input_shape: tuple[int, ...], x, seed: int | None = None, generator: torch.Generator | None = None, clamp="auto"):
    """The `augment` block `steps` applied to the raw batch `x` [N, *input_shape], drawing
    from `generator` (a CPU torch.Generator, advanced as the trainer's is) or, without one,
    from torch.Generator().manual_seed(seed) (seed 0 by default).

    `clamp` is what colour changes clamp to, as the trainer's `Augmenter(steps, clamp=...)`:
    the trainer clamps to (0, 1) when its raw training data lies in [0, 1]; "auto" decides
    the same way from `x` itself, None never clamps.

    A tensor gives a tensor (on its device; float32 unless it is float64), a numpy array an
    array; without steps `x` comes back as it is.
    """
    if isinstance(x, np.ndarray):
        as_numpy = True
    elif isinstance(x, torch.Tensor):
        as_numpy = False
    else:
        raise TrickUsageError(f"expected a batch as a tensor or numpy array {_shape(input_shape, 'N')}, found {type(x).__name__}")
    expected = tuple(input_shape)
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise TrickUsageError(f"expected a batch {_shape(expected, 'N')}, found {_shape(x.shape)}")
    if generator is not None and seed is not None:
        raise TrickUsageError("give augment either seed= or generator=, not both")
    if generator is None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, type(None))):
            raise TrickUsageError(f"seed= must be a whole number, found {seed!r}")
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    elif not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TrickUsageError(f"generator= must be a CPU torch.Generator (the trainer draws augmentation parameters on the CPU), found {generator!r}")
    batch = torch.from_numpy(np.ascontiguousarray(x, np.float32)) if as_numpy else x
    if batch.dtype not in (torch.float32, torch.float64):
        batch = batch.float()
    if clamp == "auto":
        clamp = unit_range_clamp(float(batch.min()), float(batch.max())) if len(batch) else None
    augmenter = Augmenter(steps, clamp=clamp)
    if not augmenter:
        return x
    out = augmenter(batch, generator) if len(batch) else batch  # an empty batch: nothing to draw (the sizes stay the input's)
    return out.detach().cpu().numpy() if as_numpy else out


# ---- the picture ------------------------------------------------------------------------------------------


@dataclass
class Preview:
    """What `write_preview` drew: the file, how many samples, and of which kind."""

    path: Path
    samples: int  # the training samples shown (fewer than asked if the split is smaller)
    kind: str  # "images", "sequences", "points" or "vectors"
    augmented: bool  # False when the spec has no augment block (the originals alone)


def kind_of(input_shape: tuple[int, ...]) -> str:
    """How samples of this shape are drawn."""
    if len(input_shape) == 3:
        return "images"
    if len(input_shape) == 2:
        return "sequences"
    if tuple(input_shape) == (2,):
        return "points"
    return "vectors"


def training_samples(program, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` training samples, raw (as the trainer augments them), and their labels.

    The split is the run's: the same data plan, seed and input shape; only the normalization
    is left out, and it is the pipeline's last step (it changes no split)."""
    splits = _raw_training_split(program)
    return splits.x_train[:n], splits.y_train[:n]


def _raw_training_split(program):
    plan, graph = program.plan, program.graph
    return load_splits(dataclasses.replace(plan.data, normalize=None), plan.seed, graph.input)


def write_preview(program, path: str | Path, n: int = 16, seed: int = 0) -> Preview:
    """Draw the first `n` training samples of `program` and their augmentation (seed `seed`) into `path`."""
    if n < 1:
        raise TrickUsageError(f"preview needs at least 1 sample, found {n}")
    plan, graph = program.plan, program.graph
    splits = _raw_training_split(program)
    x, labels = splits.x_train[:n], splits.y_train[:n]
    augmented = augment_batch(plan.augment, graph.input, x, seed=seed, clamp=splits.normalizer.clamp) if plan.augment else None
    kind = kind_of(tuple(graph.input))
    what = ", ".join(step.kind for step in plan.augment)
    title = f"{plan.spec}: {len(x)} training samples" + (f", original and augmented ({what}; seed {seed})" if augmented is not None else " (no augment block)")
    draw = {"images": _draw_images, "sequences": _draw_curves, "vectors": _draw_curves, "points": _draw_points}[kind]
    figure = draw(x, augmented, labels, title)
    path = Path(path)
    figure.savefig(path)
    return Preview(path, len(x), kind, augmented is not None)


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = min(count, columns)
    return columns, math.ceil(count / columns)


def _draw_images(x: torch.Tensor, augmented: torch.Tensor | None, labels: torch.Tensor, title: str):
    """Each original above its augmented version, on the originals' value range (clipped)."""
    n, channels = x.shape[:2]
    columns, rows = _grid(n, 8)
    per_sample = 1 if augmented is None else 2
    low, high = float(x.min()), float(x.max())
    if not high > low:
        high = low + 1.0

    def shown(image: torch.Tensor) -> np.ndarray:
        image = ((image.detach().cpu().double() - low) / (high - low)).clamp(0, 1)
        if channels == 3:
            return image.permute(1, 2, 0).numpy()
        return image.mean(0).numpy()  # one channel, or the mean of several: gray

    cell = 1.35
    figure = _figure(max(columns * cell, 4.0), rows * per_sample * cell + 0.7)
    grid = figure.subplots(rows * per_sample, columns, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for i in range(n):
        row, column = divmod(i, columns)
        panels = [(x[i], "original")] + ([] if augmented is None else [(augmented[i], "augmented")])
        for k, (image, name) in enumerate(panels):
            axes = grid[row * per_sample + k, column]
            axes.imshow(shown(image), cmap=None if channels == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
            axes.set_title(f"#{i} class {int(labels[i])}" if k == 0 else "augmented", fontsize=7, pad=2)
    colours = "RGB" if channels == 3 else ("gray" if channels == 1 else f"gray: the mean of {channels} channels")
    figure.suptitle(f"{title}\n{colours}, values {low:.3g}..{high:.3g} shown, outside clipped", fontsize=9)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.62 / figure.get_figheight(), wspace=0.08, hspace=0.3)
    return figure


def _draw_curves(x: torch.Tensor, augmented: torch.Tensor | None, labels: torch.Tensor, title: str):
    """One panel per sample: the original thick and pale, the augmented sample thin over it."""
    n = x.shape[0]

    def curves(t: torch.Tensor) -> torch.Tensor:  # (N, channels, length): a vector is one channel
        t = t.detach().cpu().double()
        return t if t.dim() == 3 else t.reshape(t.shape[0], 1, -1)

    x3 = curves(x)
    a3 = None if augmented is None else curves(augmented)
    channels = x3.shape[1]
    columns, rows = _grid(n, 4)
    figure = _figure(columns * 3.0, rows * 1.9 + 0.6)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat[n:]:
        axes.set_axis_off()
    for i in range(n):
        axes = grid.flat[i]
        for c in range(channels):
            colour = f"C{c % 10}"
            pale = {"linewidth": 2.6, "alpha": 0.35} if a3 is not None else {"linewidth": 1.2}
            axes.plot(x3[i, c].numpy(), color=colour, label="original" if c == 0 else None, **pale)
            if a3 is not None:
                axes.plot(a3[i, c].numpy(), color=colour, linewidth=0.9, label="augmented" if c == 0 else None)
        axes.set_title(f"#{i} class {int(labels[i])}", fontsize=8, pad=2)
        axes.tick_params(labelsize=6)
    if a3 is not None:
        grid.flat[0].legend(fontsize=6, loc="upper right")
    figure.suptitle(title + (f" — {channels} channels, one colour each" if channels > 1 else ""), fontsize=9)
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=1 - 0.55 / figure.get_figheight(), wspace=0.25, hspace=0.45)
    return figure


def _draw_points(x: torch.Tensor, augmented: torch.Tensor | None, labels: torch.Tensor, title: str):
    """Points in the plane: each original (hollow) joined to its augmented point (filled)."""
    original = x.detach().cpu().double().numpy()
    colours = [f"C{int(c) % 10}" for c in labels]
    figure = _figure(6, 5.4)
    axes = figure.subplots()
    if augmented is not None:
        moved = augmented.detach().cpu().double().numpy()
        for (x0, y0), (x1, y1) in zip(original, moved):
            axes.plot([x0, x1], [y0, y1], color="#999999", linewidth=0.7, zorder=1)
        axes.scatter(moved[:, 0], moved[:, 1], c=colours, s=22, edgecolors="white", linewidths=0.5, label="augmented", zorder=3)
    axes.scatter(original[:, 0], original[:, 1], facecolors="none", edgecolors=colours, s=36, linewidths=1.1, label="original", zorder=2)
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    axes.set_aspect("equal", adjustable="datalim")
    legend = axes.legend(loc="upper right", fontsize=8)
    for handle, text in zip(getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", []), legend.get_texts()):
        # the marker says which; the colours are the classes
        (handle.set_edgecolor if text.get_text() == "original" else handle.set_facecolor)("#555555")
    axes.set_title(title, fontsize=9)
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.92)
    return figure
