"""`trickc evaluate`: a trained run's test metrics on another labelled set, a per-class table
and a confusion matrix.

The metrics are those of the run's summary.json, computed by the trainer's own sums
(`loss` and `accuracy` for a classifier; `loss`, `mse`, `mae` and `r2` in the target's units
for a regressor; `<target>.<metric>` per head of a multi-task model). Per class c of a
classifier: precision = TP/(TP+FP), recall = TP/(TP+FN), f1 = 2·P·R/(P+R) (0 where a
denominator is 0), support = the samples whose label is c. The confusion matrix counts the
samples of true class i (row) predicted as j (column).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..dsl.diagnostics import TrickUsageError
from .predict import Loaded, Prediction, prediction, prediction_rows, write_csv
from .predict_data import Samples
from .trainer import _Sums, heads_of


@dataclass
class Evaluation:
    """What `evaluate` found on n samples: the metrics (as summary.json's `test`), and per
    classifier target the per-class rows (class, precision, recall, f1, support) and the
    confusion matrix; the predictions and the labels they were scored against."""

    n: int
    metrics: dict[str, float]
    per_class: dict[str, list[tuple[str, float, float, float, int]]] = field(default_factory=dict)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: dict[str, Prediction] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    weights: str = "best"
    tta: bool = False


def labels_of(loaded: Loaded, samples: Samples) -> dict[str, np.ndarray]:
    """The labels of every output: those of the data, and the derived targets (`target NAME =
    EXPR`) computed from `label` as training computed them."""
    labels = dict(samples.labels)
    missing = [o for o in loaded.outputs if o.target not in labels]
    derived = {t.name for t in loaded.plan.data.targets}
    if missing and "label" in labels and all(o.target in derived for o in missing):
        from .data import derive_targets

        regressed = [o.target for o in loaded.outputs if o.regression]
        found = derive_targets(loaded.plan.data.targets, labels["label"], regressed)
        labels.update({o.target: found[o.target] for o in missing})
        missing = []
    if missing:
        output = missing[0]
        kind = samples.ids[0]
        if kind == "file":
            what = "class folders (PATH/<class>/<image>) to take the labels from"
        elif kind == "index":
            what = f"array '{output.column}'" + (" or 'y'" if output.target == "label" and output.column != "y" else "") + " with the labels"
        else:
            what = f"column '{output.column}' with the labels"
        raise TrickUsageError(f"evaluate needs the labels, and '{samples.written}' has no {what}; `trickc predict` needs none")
    return labels


def evaluate(loaded: Loaded, samples: Samples, weights: str | None = None, tta: bool = False) -> Evaluation:
    """The run's metrics on labelled samples, its per-class tables and confusion matrices."""
    labels = labels_of(loaded, samples)
    outputs = loaded.forward(samples.x, weights, tta)
    scales = {o.target: (o.mean, o.std) for o in loaded.outputs if o.regression}
    heads = heads_of(loaded.graph, loaded.plan, scales)
    targets = {}
    for o in loaded.outputs:
        if o.regression:  # the model's units: standardized (the loss is on these)
            targets[o.target] = torch.from_numpy(((labels[o.target] - o.mean) / o.std).astype(np.float32))
        else:
            targets[o.target] = torch.from_numpy(labels[o.target].astype(np.int64))
    n = len(samples.x)
    sums = _Sums(heads)
    if n:
        sums.add(outputs, targets, n)
    metrics = sums.metrics(loaded.multi)
    if "accuracy" not in metrics and "label.accuracy" in metrics:  # a multi-task model's main head, as in summary.json
        metrics = {"loss": metrics["loss"], "accuracy": metrics["label.accuracy"], **metrics}
    found = Evaluation(n, metrics, labels=labels, weights=weights or loaded.weights, tta=tta)
    for o in loaded.outputs:
        p = prediction(o, outputs[o.target], log_probs=tta)
        found.predictions[o.target] = p
        if not o.regression:
            found.confusion[o.target], found.per_class[o.target] = per_class(labels[o.target], p.index, list(o.classes))
    return found


def per_class(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[tuple[str, float, float, float, int]]]:
    """(confusion matrix [k, k], one row (class, precision, recall, f1, support) per class)."""
    k = len(classes)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    rows = []
    for c in range(k):
        tp = int(confusion[c, c])
        predicted_c, support = int(confusion[:, c].sum()), int(confusion[c].sum())
        precision = tp / predicted_c if predicted_c else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((classes[c], precision, recall, f1, support))
    return confusion, rows


# ---- reports --------------------------------------------------------------------------------------------


def metrics_text(metrics: dict[str, float]) -> str:
    rows = [(key, f"{value:.2%}" if key.endswith("accuracy") else f"{value:.4f}") for key, value in metrics.items()]
    width = max((len(k) for k, _ in rows), default=0)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in rows)


def per_class_text(target: str, rows: list[tuple[str, float, float, float, int]]) -> str:
    """The per-class table as printed, with the macro averages (the mean over the classes)."""
    shown = [r for r in rows if r[4]] or rows  # classes without samples in this set are left out
    body = [(name, f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", str(s)) for name, p, r, f, s in shown]
    if shown:
        mean = [sum(row[i] for row in shown) / len(shown) for i in (1, 2, 3)]
        body.append(("macro avg", *(f"{v:.3f}" for v in mean), str(sum(row[4] for row in shown))))
    table = [(target, "precision", "recall", "f1", "support")] + body
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    return "".join("  ".join([row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 5)]) + "\n" for row in table)


def _suffix(loaded: Loaded, target: str) -> str:
    """'' for a model without heads, else '_<target>' (a file name per head)."""
    return "" if not loaded.multi else "_" + re.sub(r"[^A-Za-z0-9_.-]", "_", target)


def draw_confusion(confusion: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    """The confusion matrix as a picture: counts shaded by the share of each true class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    side = min(max(4.0, 0.45 * k + 2.0), 20.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    rows = confusion.sum(1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    names = [c if len(c) <= 16 else c[:15] + "…" for c in classes]
    if k <= 40:
        ax.set_xticks(range(k), names, rotation=90 if k > 8 and max(map(len, names)) > 2 else 0)
        ax.set_yticks(range(k), names)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if confusion[i, j]:
                    ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_evaluation(loaded: Loaded, found: Evaluation, samples: Samples, out: Path) -> list[Path]:
    """metrics.json, predictions.csv (with the true labels), and per classifier
    per_class[_<target>].csv and confusion_matrix[_<target>].png in `out`; the files written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrickUsageError(f"cannot write into {out}: {err.strerror or err}") from None
    written = []
    epoch = loaded.checkpoint(found.weights)[2]
    record = {"run": str(loaded.run_dir), "data": samples.written, "samples": found.n, "weights": found.weights, "epoch": epoch, "tta": found.tta, "metrics": found.metrics}
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    written.append(out / "metrics.json")
    header, rows = prediction_rows(samples.ids, list(found.predictions.values()))
    for o in loaded.outputs:  # the true label beside each prediction
        truth = found.labels[o.target]
        header.append(f"{o.column}_true")
        values = [o.classes[k] for k in truth] if not o.regression else [format(float(v), ".8g") for v in truth]
        for row, value in zip(rows, values):
            row.append(value)
    write_csv(out / "predictions.csv", header, rows)
    written.append(out / "predictions.csv")
    for target, table in found.per_class.items():
        suffix = _suffix(loaded, target)
        path = out / f"per_class{suffix}.csv"
        write_csv(path, ["class", "precision", "recall", "f1", "support"], [[n, f"{p:.6f}", f"{r:.6f}", f"{f:.6f}", str(s)] for n, p, r, f, s in table])
        picture = out / f"confusion_matrix{suffix}.png"
        output = next(o for o in loaded.outputs if o.target == target)
        draw_confusion(found.confusion[target], list(output.classes), f"{loaded.graph.name}: {output.column} on {Path(samples.written).name}", picture)
        written += [path, picture]
    return written


def default_folder(loaded: Loaded, data: str) -> Path:
    """Where `trickc evaluate` writes without -o: RUN/evaluation/<the data's name>."""
    name = Path(str(data).rstrip("/\\")).stem or "data"
    return loaded.run_dir / "evaluation" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def evaluate_file(loaded: Loaded, data: str, out: str | None, weights: str | None = None, tta: bool = False, stream=None) -> tuple[Evaluation, Path, list[Path], str]:
    """`trickc evaluate`: (the evaluation, its folder, the files written, the text to print)."""
    from .predict_data import read_samples

    samples = read_samples(data, loaded.inputs, loaded.outputs, stream)
    found = evaluate(loaded, samples, weights, tta)
    folder = Path(out) if out is not None else default_folder(loaded, data)
    files = write_evaluation(loaded, found, samples, folder)
    epoch = loaded.checkpoint(found.weights)[2]
    text = f"{samples.written}: {found.n} samples, {found.weights}.pt (epoch {epoch}){', test-time augmentation' if tta else ''}\n"
    text += metrics_text(found.metrics)
    for target, rows in found.per_class.items():
        column = next(o.column for o in loaded.outputs if o.target == target)
        text += "\n" + per_class_text(column, rows)
    return found, folder, files, text
