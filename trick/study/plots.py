"""The pictures of a study, drawn with matplotlib on the Agg canvas."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars(path: Path, rows: Sequence[tuple[str, float, float | None, bool]], metric: str, title: str) -> None:
    """Horizontal bars of (label, mean, std, is the reference) with the std as error bars,
    and a line at the reference's mean."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.5))
    labels = [r[0] for r in rows][::-1]
    means = [r[1] for r in rows][::-1]
    stds = [r[2] or 0.0 for r in rows][::-1]
    colours = ["C1" if r[3] else "C0" for r in rows][::-1]
    axes.barh(labels, means, xerr=stds, color=colours, capsize=4, alpha=0.85)
    reference = next((r[1] for r in rows if r[3]), None)
    if reference is not None:
        axes.axvline(reference, color="C1", linestyle="--", linewidth=1)
    low = min(m - s for m, s in zip(means, stds))
    high = max(m + s for m, s in zip(means, stds))
    pad = (high - low) * 0.15 or 0.01
    axes.set_xlim(low - pad, high + pad)
    axes.set_xlabel(f"test {metric} (mean ± std over seeds)")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def curves(path: Path, series: dict[str, list[tuple[int, float]]], ylabel: str, title: str, highlight: str | None = None) -> None:
    """One line per label of (epoch, value) points, overlaid."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for index, (label, points) in enumerate(series.items()):
        if not points:
            continue
        epochs, values = zip(*points)
        wide = label == highlight
        axes.plot(epochs, values, label=label, linewidth=2.5 if wide else 1.2, color="black" if wide else f"C{index % 10}")
    axes.set_xlabel("epoch")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2 if len(series) > 8 else 1)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def panels(path: Path, panes: list[tuple[str, dict[str, list[tuple[int, float]]]]], title: str) -> None:
    """Curves side by side: (y label, {label: points}) per pane."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panes), figsize=(6 * len(panes), 4.2), squeeze=False)
    for pane, (ylabel, series) in zip(axes[0], panes):
        for index, (label, points) in enumerate(series.items()):
            if points:
                epochs, values = zip(*points)
                pane.plot(epochs, values, label=label, color=f"C{index % 10}")
        pane.set_xlabel("epoch")
        pane.xaxis.get_major_locator().set_params(integer=True)
        pane.set_ylabel(ylabel)
        pane.grid(alpha=0.3)
        pane.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def sweep(path: Path, trials: list[dict], dimensions, metric: str, best: int | None) -> None:
    """The metric of each finished trial against each varied argument (log axes for log
    ranges, positions for lists); the best trial in red."""
    plt = _pyplot()
    n = len(dimensions)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    done = [t for t in trials if t["value"] is not None]
    for index, dim in enumerate(dimensions):
        pane = axes[index // cols][index % cols]
        if dim.kind == "choice":
            xs = [dim.choices.index(t["params"][dim.path]) for t in done if dim.path in t["params"]]
            pane.set_xticks(range(len(dim.texts)), dim.texts, rotation=30 if len(dim.texts) > 4 else 0)
            pane.set_xlim(-0.5, len(dim.texts) - 0.5)
        else:
            xs = [t["params"][dim.path] for t in done if dim.path in t["params"]]
            if dim.log:
                from matplotlib.ticker import NullFormatter

                pane.set_xscale("log")
                pane.xaxis.set_minor_formatter(NullFormatter())
            pane.set_xlim(dim.low, dim.high)
        ys = [t["value"] for t in done if dim.path in t["params"]]
        colours = ["C3" if t["number"] == best else "C0" for t in done if dim.path in t["params"]]
        pane.scatter(xs, ys, c=colours, s=28, alpha=0.8)
        pane.set_xlabel(dim.path)
        pane.set_ylabel(metric)
        pane.grid(alpha=0.3)
    for index in range(n, rows * cols):
        axes[index // cols][index % cols].axis("off")
    figure.suptitle(f"{metric} of {len(done)} finished trials (red: the best)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
