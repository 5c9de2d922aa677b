"""The pictures of a run, written into its folder when it finishes.

    curves.png              train and validation loss and accuracy per epoch, the best epoch
                            (the early-stopping point) marked; every run
    weights.png             a histogram of each layer's weights (L1's sparsity shows as a
                            spike at 0); every run unless `report { plot ... }` leaves it out
    decision_boundary.png   the classes over the input plane, with the samples, as on the
                            TensorFlow playground; runs on 2-D inputs (`input [2]`)
    predictions.png         predicted against true values on the test split, per regression
                            target (in the target's units); runs that regress
    tensorboard/            TensorBoard event files, with `--tensorboard`

`report { plot ... }` chooses the plots besides curves.png; without it a run gets the
defaults above. Matplotlib draws on the Agg canvas directly (no pyplot, so a program that
embeds trick keeps its own backend), and is imported only here, when a run ends.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import torch

from ..compiler import ir
from .objectives import weights_by_layer

PLOTS = ("curves", "decision_boundary", "weights", "predictions")
FILES = {"curves": "curves.png", "decision_boundary": "decision_boundary.png", "weights": "weights.png", "predictions": "predictions.png"}
TENSORBOARD_MISSING = "--tensorboard needs the tensorboard package, which is not installed; install it with: pip install tensorboard"
SPARSE = 1e-3  # |w| below this counts as zero in the weight histograms

# The TensorFlow playground's colours: orange for class 0, blue for class 1.
ORANGE, BLUE = "#f59322", "#0877bd"
TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#ff7f0e"


def chosen(plan: ir.TrainingPlan, graph: ir.ModelGraph) -> tuple[str, ...]:
    """The plots a run writes: curves, and those `report { plot ... }` names, or by default
    the weights and, for a 2-D input, the decision boundary."""
    if plan.plots:
        wanted = ("curves",) + tuple(p for p in plan.plots if p != "curves")
    else:
        wanted = ("curves", "weights", "decision_boundary", "predictions")
    return tuple(p for p in wanted if (p != "decision_boundary" or is_planar(graph)) and (p != "predictions" or plan.data.regression))


def is_planar(graph: ir.ModelGraph) -> bool:
    """Whether the inputs are points in the plane, whose decision boundary can be drawn."""
    return tuple(graph.input) == (2,)


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def write_reports(
    folder: Path,
    program,
    model: torch.nn.Module,
    splits,
    history: list[dict[str, Any]],
    summary: dict[str, Any],
    stream: TextIO | None = None,
    tensorboard: bool = False,
) -> list[Path]:
    """Write the run's plots (and TensorBoard files) into `folder`; return the files written.

    A plot that fails is reported and skipped: the run itself is already complete."""
    plan, graph = program.plan, program.graph
    written: list[Path] = []
    for name in chosen(plan, graph):
        path = Path(folder) / FILES[name]
        try:
            if name == "curves":
                plot_curves(path, plan, history, summary)
            elif name == "weights":
                plot_weights(path, plan, graph, model)
            elif name == "predictions":
                plot_predictions(path, plan, graph, model, splits)
            else:
                plot_decision_boundary(path, plan, graph, model, splits, summary)
        except Exception as err:  # noqa: BLE001 - a picture must not lose a finished run
            _warn(stream, f"warning: could not write {path}: {type(err).__name__}: {err}")
            continue
        written.append(path)
    if tensorboard:
        logdir = write_tensorboard(Path(folder) / "tensorboard", plan, graph, model, history, summary, stream)
        if logdir is not None:
            written.append(logdir)
    return written


def _warn(stream: TextIO | None, text: str) -> None:
    print(text, file=stream if stream is not None else sys.stderr, flush=True)


def _figure(width: float, height: float):
    """A figure on its own Agg canvas (no pyplot: nothing global changes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


# ---- curves -------------------------------------------------------------------------------------------


def _accuracy_keys(history: list[dict[str, Any]]) -> list[str]:
    """The accuracy series: train.accuracy and val.accuracy, or one pair per head."""
    keys = [k for k in history[0] if k.endswith(".accuracy") and k.split(".")[0] in ("train", "val")] if history else []
    if not keys and history:  # a regressor: its r2 takes the accuracy's place
        keys = [k for k in history[0] if k.endswith(".r2") and k.split(".")[0] in ("train", "val")]
    plain = [k for k in keys if k.count(".") == 1]
    return plain or keys


def plot_curves(path: Path, plan: ir.TrainingPlan, history: list[dict[str, Any]], summary: dict[str, Any]):
    """Loss and accuracy per epoch, train solid and validation dashed; the best epoch marked."""
    figure = _figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    marker = "o" if len(history) <= 30 else None
    heads = sorted({k.split(".")[1] for k in _accuracy_keys(history) if k.count(".") == 2})
    colours = {head: f"C{i}" for i, head in enumerate(heads)}

    def series(axes, key: str):
        split = key.split(".")[0]
        head = key.split(".")[1] if key.count(".") == 2 else None
        values = [r.get(key, math.nan) for r in history]
        colour = colours.get(head) if head else (TRAIN_COLOUR if split == "train" else VAL_COLOUR)
        name = {"train": "train", "val": "validation"}[split] + (f" {head}" if head else "")
        axes.plot(epochs, values, color=colour, linestyle="-" if split == "train" or not head else "--", marker=marker, markersize=3, label=name)

    for key in ("train.loss", "val.loss"):
        if history and key in history[0]:
            series(loss_axes, key)
    accuracy_keys = _accuracy_keys(history)
    for key in accuracy_keys:
        series(accuracy_axes, key)
    loss_axes.set_title("loss")
    accuracy_axes.set_title("r2" if accuracy_keys and accuracy_keys[0].endswith(".r2") else "accuracy")
    if not accuracy_keys:
        accuracy_axes.text(0.5, 0.5, "no accuracy (regression)", ha="center", va="center", transform=accuracy_axes.transAxes, color="gray")

    best, run = summary.get("best_epoch"), summary.get("epochs_run", len(history))
    monitor = plan.early_stop.monitor if plan.early_stop is not None else ("val.loss" if history and "val.loss" in history[0] else None)
    if best:
        what = "restored" if summary.get("weights") == "best" else "best"
        for axes in (loss_axes, accuracy_axes):
            axes.axvline(best, color="#333333", linestyle=":", linewidth=1.5, label=f"{what} epoch {best}" if axes is loss_axes else None)
            if summary.get("stopped_early") and run > best:
                axes.axvspan(best, run, color="#333333", alpha=0.08, label=f"patience, stopped at {run}" if axes is loss_axes else None)
        if monitor is not None:
            record = next((r for r in history if r["epoch"] == best), None)
            if record is not None and monitor in record:
                axes = loss_axes if monitor.endswith("loss") else accuracy_axes
                axes.plot([best], [record[monitor]], marker="*", markersize=14, color="#333333", linestyle="none", label=f"{monitor} {record[monitor]:.4g}")
    for axes in (loss_axes, accuracy_axes):
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        if epochs:
            axes.set_xlim(0.5, max(epochs) + 0.5)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    stopped = f", stopped early at epoch {run}" if summary.get("stopped_early") else ""
    figure.suptitle(f"{plan.spec} — {run} epochs{stopped}")
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.85, wspace=0.2)
    figure.savefig(path)
    return figure


# ---- predictions ----------------------------------------------------------------------------------------


@torch.no_grad()
def regression_predictions(model: torch.nn.Module, splits, split: str = "test", batch: int = 1024) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{target: (predicted, true)} in the target's units, over a split, for every regression target."""
    model.eval()
    x, targets = splits.split(split)
    found: dict[str, list] = {t: [] for t in splits.scales}
    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    for start in range(0, len(x), batch):
        out = model(x[start : start + batch].to(device))
        out = out if isinstance(out, dict) else {"label": out}
        for target in found:
            found[target].append(out[target].reshape(-1).double().cpu())
    result = {}
    for target, parts in found.items():
        mean, std = splits.scales[target]
        predicted = torch.cat(parts) * std + mean if parts else torch.zeros(0, dtype=torch.float64)
        result[target] = (predicted, targets[target].double() * std + mean)
    return result


def plot_predictions(path: Path, plan: ir.TrainingPlan, graph: ir.ModelGraph, model: torch.nn.Module, splits):
    """Predicted against true values on the test split, one panel per regression target, with
    the line ŷ = y and the test r2."""
    found = regression_predictions(model, splits)
    figure = _figure(4.5 * max(1, len(found)), 4.2)
    panels = figure.subplots(1, max(1, len(found)), squeeze=False)[0]
    for axes, (target, (predicted, truth)) in zip(panels, found.items()):
        axes.scatter(truth.numpy(), predicted.numpy(), s=10, alpha=0.6, color=TRAIN_COLOUR, edgecolors="none")
        if len(truth):
            low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
            axes.plot([low, high], [low, high], color="#333333", linewidth=1, linestyle="--", label="predicted = true")
            spread = float(((truth - truth.mean()) ** 2).sum())
            r2 = 1 - float(((predicted - truth) ** 2).sum()) / spread if spread > 0 else 0.0
            axes.set_title(f"{target}: test r2 {r2:.3f}", fontsize=10)
            axes.legend(fontsize=8, loc="upper left")
        axes.set_xlabel(f"true {target}")
        axes.set_ylabel(f"predicted {target}")
        axes.grid(alpha=0.3)
    figure.suptitle(f"{plan.spec} — predicted against true (test split)", fontsize=11)
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.84, wspace=0.3)
    figure.savefig(path)
    return figure


# ---- weights ------------------------------------------------------------------------------------------


def layer_weights(graph: ir.ModelGraph, model: torch.nn.Module) -> list[tuple[ir.Layer, torch.Tensor]]:
    """Each layer with weights (dense, conv, gru, lstm) and all its weight matrices and
    kernels flattened: the weights the penalties see (`objectives.weights_by_layer`; biases
    and normalization parameters are not weights)."""
    return [(layer, torch.cat([p.detach().float().reshape(-1).cpu() for p in params])) for layer, params in weights_by_layer(graph, model) if params]


def plot_weights(path: Path, plan: ir.TrainingPlan, graph: ir.ModelGraph, model: torch.nn.Module):
    """One histogram per layer with weights, with the share of weights that are (nearly) 0."""
    from ..compiler.graph import clause_text

    layers = layer_weights(graph, model)
    columns = min(4, max(1, len(layers)))
    rows = max(1, math.ceil(len(layers) / columns))
    figure = _figure(3.2 * columns, 2.6 * rows + 0.6)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat[len(layers):]:
        axes.set_visible(False)
    for axes, (layer, w) in zip(grid.flat, layers):
        values = w.numpy()
        axes.hist(values, bins=60, color=TRAIN_COLOUR, alpha=0.85)
        zero = float((w.abs() < SPARSE).float().mean())
        axes.set_title(f"{layer.name}: {clause_text(layer)}", fontsize=9)
        axes.text(0.98, 0.95, f"{w.numel():,} weights\n|w| < {SPARSE:g}: {zero:.0%}", ha="right", va="top", fontsize=8, transform=axes.transAxes, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
        axes.tick_params(labelsize=7)
    penalties = ", ".join(f"{r.kind} {r.args['strength']:g}" for r in plan.regularizers)
    figure.suptitle(f"{plan.spec} — weights" + (f" ({penalties})" if penalties else ""))
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=1 - 0.6 / (2.6 * rows + 0.6), hspace=0.45, wspace=0.25)
    figure.savefig(path)
    return figure


# ---- decision boundary --------------------------------------------------------------------------------


def _main_output(outputs, graph: ir.ModelGraph) -> tuple[torch.Tensor, str]:
    """The output to draw and its loss: the `label` head (or the first) of a multi-task model."""
    if isinstance(outputs, dict):
        heads = {h.target: h for h in graph.heads}
        target = "label" if "label" in outputs else next(iter(outputs))
        return outputs[target], heads[target].loss if target in heads else "cross_entropy"
    return outputs, ""


def _raw(x: torch.Tensor, normalizer) -> torch.Tensor:
    """Inputs as the data gave them (the inverse of the normalization fitted on train)."""
    if getattr(normalizer, "kind", None) is None:
        return x.double()
    return x.double() * normalizer.scale.cpu() + normalizer.shift.cpu()


def plot_decision_boundary(path: Path, plan: ir.TrainingPlan, graph: ir.ModelGraph, model: torch.nn.Module, splits, summary: dict[str, Any]):
    """The model's prediction over the input plane (P(class 1) for two classes, the most
    likely class shaded by its probability otherwise), with train and test samples."""
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap, ListedColormap

    points = {name: (_raw(splits.split(name)[0].cpu(), splits.normalizer), splits.split(name)[1]["label"].cpu()) for name in ("train", "test")}
    everything = torch.cat([x for x, _ in points.values() if len(x)])
    low, high = everything.min(0).values, everything.max(0).values
    margin = (high - low).clamp_min(1e-6) * 0.1
    steps = 200
    xs = torch.linspace(float(low[0] - margin[0]), float(high[0] + margin[0]), steps, dtype=torch.float64)
    ys = torch.linspace(float(low[1] - margin[1]), float(high[1] + margin[1]), steps, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    if getattr(splits.normalizer, "kind", None) is not None:
        grid = (grid - splits.normalizer.shift.cpu()) / splits.normalizer.scale.cpu()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs, loss = _main_output(model(grid.float().to(device)), graph)
    finally:
        model.train(was_training)
    outputs = outputs.float().cpu()
    if (loss or plan.loss.kind) == "mse":
        classes = 0
    else:
        classes = outputs.shape[1]
    figure = _figure(6, 5.4)
    axes = figure.subplots()
    extent = (float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1]))
    playground = LinearSegmentedColormap.from_list("playground", [ORANGE, "#ffffff", BLUE])
    if classes == 2:
        p1 = outputs.softmax(1)[:, 1].reshape(steps, steps).numpy()
        shown = axes.contourf(gx.numpy(), gy.numpy(), p1, levels=np.linspace(0, 1, 21), cmap=playground, alpha=0.8)
        axes.contour(gx.numpy(), gy.numpy(), p1, levels=[0.5], colors="#333333", linewidths=1)
        figure.colorbar(shown, ax=axes, label="P(class 1)", ticks=[0, 0.25, 0.5, 0.75, 1])
        colours = ListedColormap([ORANGE, BLUE])
    elif classes > 2:
        probabilities = outputs.softmax(1)
        best = probabilities.argmax(1).reshape(steps, steps).numpy()
        confidence = probabilities.max(1).values.reshape(steps, steps).numpy()
        colours = ListedColormap([f"C{i % 10}" for i in range(classes)])
        rgba = colours(best, alpha=None)
        rgba[..., 3] = 0.25 + 0.5 * (confidence - 1 / classes) / (1 - 1 / classes)
        axes.imshow(rgba, origin="lower", extent=extent, aspect="auto", interpolation="nearest")
    else:  # a regression output: its value over the plane
        value = outputs[:, 0].reshape(steps, steps).numpy()
        shown = axes.contourf(gx.numpy(), gy.numpy(), value, levels=20, cmap=playground, alpha=0.8)
        figure.colorbar(shown, ax=axes, label="output")
        colours = playground
    for name, (x, y) in points.items():
        if not len(x):
            continue
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:1500] if len(x) > 1500 else torch.arange(len(x))
        x, y = x[keep].numpy(), y[keep].numpy()
        train = name == "train"
        axes.scatter(
            x[:, 0], x[:, 1], c=y, cmap=colours, vmin=0, vmax=max(classes - 1, 1) if classes else None,
            s=14 if train else 22, marker="o" if train else "^", edgecolors="white" if train else "black", linewidths=0.5, label=name,
        )
    axes.set_xlim(extent[0], extent[1])
    axes.set_ylim(extent[2], extent[3])
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    legend = axes.legend(loc="upper right", fontsize=8)
    for handle in getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", []):
        handle.set_facecolor("#999999")  # the marker says the split; the colours are the classes
    accuracy = summary.get("test", {}).get("accuracy")
    axes.set_title(f"{plan.spec} — decision boundary" + (f" (test accuracy {accuracy:.1%})" if accuracy is not None else ""), fontsize=11)
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.1, top=0.92)
    figure.savefig(path)
    return figure


# ---- TensorBoard --------------------------------------------------------------------------------------


def write_tensorboard(logdir: Path, plan: ir.TrainingPlan, graph: ir.ModelGraph, model: torch.nn.Module, history: list[dict[str, Any]], summary: dict[str, Any], stream: TextIO | None) -> Path | None:
    """Event files with every metric per epoch (`train/loss`, `val/accuracy`, ...), the test
    metrics and the final weights' histograms; None, with a message, without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        _warn(stream, TENSORBOARD_MISSING)
        return None
    with SummaryWriter(log_dir=str(logdir)) as writer:
        for record in history:
            for key, value in record.items():
                if key not in ("epoch", "stage") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(key.replace(".", "/"), value, record["epoch"])
        last = summary.get("epochs_run", len(history))
        for key, value in summary.get("test", {}).items():
            writer.add_scalar(f"test/{key}".replace(".", "/"), value, last)
        for layer, weights in layer_weights(graph, model):
            writer.add_histogram(f"weights/{layer.name}", weights, last)
    if stream is not None:
        print(f"TensorBoard: tensorboard --logdir {logdir}", file=stream, flush=True)
    return logdir
