"""Using a trained run: `trick.load(RUN).predict(x)` and `trickc predict`.

A run folder holds what prediction needs: the spec (compiled by the caller, as the run
trained it: trick/compiler/run_spec.py), the weights (best.pt, last.pt), the input
normalization fitted on the training split (in each checkpoint) and data.json: the inputs'
kind and column names, and each target's class names or standardization. A run written
before data.json existed predicts too: its classes are named "0", "1", ..., its regression
targets are not standardized and its input columns are unnamed.

The model gives logits for a classifier and standardized values for a regression target
(value = output · std + mean); `predict` gives class names with their probabilities
(softmax of the logits) and values in the target's own units.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F

from ..compiler import ir
from ..dsl.diagnostics import Diagnostic, Span, TrickUsageError
from . import checkpoint as ckpt
from . import datainfo
from .data import Normalizer
from .tta import tta_enabled, tta_logits

WEIGHTS = ("best", "last")


@dataclass(frozen=True)
class Output:
    """One output of the model as prediction reports it: its target (the model's output key,
    `label` for a model without heads), its column (the target's name in data files and in
    predictions: `species` for `source file ... y=species`), and its class names or the
    standardization of its values (value = output · std + mean)."""

    target: str
    column: str
    regression: bool
    classes: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    def values(self, out: torch.Tensor) -> np.ndarray:
        """The model's regression output in the target's units: float64 [N] (or [N, k])."""
        values = out.double().cpu().numpy() * self.std + self.mean
        return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


@dataclass(frozen=True)
class Inputs:
    """What the model takes: the shape of one input, its kind (table, images or arrays), the
    input columns' names (tables; None when unknown) and, for images, their size and colour."""

    shape: tuple[int, ...]
    kind: str
    names: tuple[str, ...] | None = None
    size: int | None = None
    color: str | None = None


@dataclass
class Prediction:
    """One output's predictions for N inputs: `values` are the class names (classifiers) or
    the numbers (regression); `probabilities` [N, classes] the softmax of the logits."""

    output: Output
    values: np.ndarray
    probabilities: np.ndarray | None = None

    @property
    def target(self) -> str:
        return self.output.target

    @property
    def classes(self) -> list[str]:
        return list(self.output.classes)

    @property
    def index(self) -> np.ndarray | None:
        """The predicted class indices (classifiers)."""
        return None if self.probabilities is None else self.probabilities.argmax(1)

    @property
    def probability(self) -> np.ndarray | None:
        """The probability of the predicted class (classifiers)."""
        return None if self.probabilities is None else self.probabilities.max(1)


# ---- what the run knows about its data ----------------------------------------------------------------


def _read_json(path: Path, needed: bool = True) -> dict | None:
    """A JSON object of the run folder; None when the file is missing (or, unless `needed`,
    damaged: the summary only names the spec hash, while data.json names the classes)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        if not needed:
            return None
        raise TrickUsageError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
    return data if isinstance(data, dict) else None


def _width(graph: ir.ModelGraph, target: str) -> int:
    if graph.heads:
        head = next(h for h in graph.heads if h.target == target)
        return math.prod(head.layers[-1].output if head.layers else graph.output)
    return math.prod(graph.output)


def run_data(program, data: dict | None) -> tuple[Inputs, list[Output]]:
    """The inputs and outputs of a run's model, from data.json (`data`), else from the plan."""
    graph, plan = program.graph, program.plan
    data = data or {}
    source = plan.data.source
    known_targets = data.get("targets") if isinstance(data.get("targets"), dict) else {}
    regressed = ir.regression_targets(graph, plan.loss.kind)
    outputs = []
    for target in [h.target for h in graph.heads] or ["label"]:
        info = known_targets.get(target) if isinstance(known_targets.get(target), dict) else {}
        regression = info["task"] == "regression" if info.get("task") in ("regression", "classification") else target in regressed
        column = info.get("column")
        if not isinstance(column, str) or not column:
            y = source.args.get("y")
            column = y if target == "label" and source.kind == "file" and isinstance(y, str) else target
        width = _width(graph, target)
        names = [str(c) for c in info.get("classes") or []] if not regression else []
        classes = tuple(names + [str(i) for i in range(len(names), width)]) if not regression else ()
        mean, std = (float(info.get("mean", 0.0)), float(info.get("std", 1.0))) if regression else (0.0, 1.0)
        outputs.append(Output(target, column, regression, classes, mean, std if std else 1.0))
    shape = tuple(graph.input)
    given = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
    kind = given.get("kind") or ("images" if len(shape) == 3 else "table" if len(shape) == 1 else "arrays")
    names = given.get("names")
    if names is None and source.kind == "file" and isinstance(source.args.get("x"), list):
        names = source.args["x"]
    names = tuple(str(n) for n in names) if isinstance(names, list) and len(names) == math.prod(shape) else None
    size, color = given.get("size"), given.get("color")
    if len(shape) == 3 and shape[1] == shape[2] and shape[0] in (1, 3):
        size, color = size or shape[1], color or ("rgb" if shape[0] == 3 else "gray")
    return Inputs(shape, kind, names, size, color), outputs


# ---- a loaded run ---------------------------------------------------------------------------------------


class Loaded:
    """A trained run, ready to predict: `predict(x)`, `model`, `classes`, `program`.

    `weights` ("best" or "last") chooses the checkpoint that `model` and `predict` use unless
    `predict(weights=...)` says otherwise; a run without it is a TrickUsageError."""

    def __init__(self, run_dir: str | Path, program, weights: str = "best", device: str | torch.device = "cpu"):
        self.run_dir = Path(run_dir)
        self.program = program
        self.graph: ir.ModelGraph = program.graph
        self.plan: ir.TrainingPlan = program.plan
        self.device = torch.device(device)
        self.data = _read_json(self.run_dir / datainfo.FILE)
        self.summary = _read_json(self.run_dir / "summary.json", needed=False) or {}
        self.inputs, self.outputs = run_data(program, self.data)
        self.weights = _check_weights(weights)
        self._loaded: dict[str, tuple[torch.nn.Module, Normalizer, int]] = {}
        self.checkpoint(self.weights)  # a run without these weights fails here, not at the first prediction

    @property
    def spec_hash(self) -> str:
        """What the run trained (the spec, its imports, its data and --set): summary.json's."""
        return str(self.summary.get("content_hash") or self.program.content_hash)

    @property
    def multi(self) -> bool:
        """Whether the model has heads (its forward gives a dict; predict too)."""
        return bool(self.graph.heads)

    @property
    def model(self) -> torch.nn.Module:
        """The trained nn.Module (eval mode) of the chosen weights; it takes normalized inputs."""
        return self.checkpoint(self.weights)[0]

    @property
    def normalizer(self) -> Normalizer:
        """The input normalization fitted on the training split."""
        return self.checkpoint(self.weights)[1]

    @property
    def classes(self) -> list[str] | dict[str, list[str]]:
        """The class names: a list for a model without heads, else a dict by target (classifier heads)."""
        if not self.multi:
            return list(self.outputs[0].classes)
        return {o.target: list(o.classes) for o in self.outputs if not o.regression}

    def checkpoint(self, weights: str) -> tuple[torch.nn.Module, Normalizer, int]:
        """(model in eval mode, normalizer, epoch) of best.pt or last.pt."""
        weights = _check_weights(weights)
        if weights not in self._loaded:
            path = self.run_dir / f"{weights}.pt"
            if not path.is_file():
                other = self.run_dir / f"{'last' if weights == 'best' else 'best'}.pt"
                if not other.is_file():
                    raise TrickUsageError(f"{self.run_dir} has no weights: neither best.pt nor last.pt is there (a run writes them when its first epoch ends); train it with `trickc run`, or name another run folder")
                raise TrickUsageError(f"{self.run_dir} has no {weights}.pt; use its {other.stem} weights (--weights {other.stem}, or weights='{other.stem}')")
            state = ckpt.load(path)
            model = self.program.model()
            normalizer = Normalizer()
            try:
                model.load_state_dict(state["model"])
                normalizer.load_state_dict(state["normalizer"])
            except (KeyError, RuntimeError, TypeError, ValueError) as err:  # weights of another network
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
                raise ckpt.CheckpointError(Diagnostic(Span.point(str(path), 1, 1), f"these weights do not fit the network of {self.run_dir / 'spec.trick'}: {reason}")) from None
            model.to(self.device).eval().requires_grad_(False)
            self._loaded[weights] = (model, normalizer.to(self.device), int(state.get("epoch", 0)))
        return self._loaded[weights]

    def tensor(self, x: Any) -> torch.Tensor:
        """Raw inputs as float32 [N, *input shape]: an array or tensor [N, *shape] (or [N,
        prod(shape)], or one input [*shape]); uint8 data are images, scaled by 1/255 as the
        image sources scale them. Another shape is a TrickUsageError."""
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if t.dtype == torch.uint8:
            t = t.to(torch.float32).div_(255.0)
        elif not (t.dtype.is_floating_point or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)):
            raise TrickUsageError(f"expected numbers as inputs, found {t.dtype}")
        shape = self.inputs.shape
        if tuple(t.shape) == shape:
            t = t.unsqueeze(0)
        if t.dim() >= 1 and (tuple(t.shape[1:]) == shape or (t.dim() == 2 and t.shape[1] == math.prod(shape))):
            return t.to(torch.float32).reshape(len(t), *shape)
        raise TrickUsageError(f"the model takes inputs of shape {ir.show_shape(shape)} (a batch [N, {', '.join(map(str, shape))}]), found {ir.show_shape(tuple(t.shape))}")

    @torch.no_grad()
    def forward(self, x: Any, weights: str | None = None, tta: bool = False, batch: int = 1024) -> dict[str, torch.Tensor]:
        """The model's outputs by target for raw inputs: logits (with `tta`, the log of the
        softmax averaged over the spec's test-time views) or standardized values, on the CPU."""
        model, normalizer, _ = self.checkpoint(weights or self.weights)
        x = self.tensor(x)
        if tta:
            self._check_tta()
        found: list[dict[str, torch.Tensor]] = []
        for start in range(0, len(x), batch):
            xb = x[start : start + batch].to(self.device)
            if tta:
                out = tta_logits(model, xb, self.plan.evaluate, self.plan.augment, normalizer)
            else:
                out = model(normalizer(xb))
            found.append({k: v.cpu() for k, v in (out if isinstance(out, dict) else {"label": out}).items()})
        if not found:
            return {o.target: torch.empty(0, _width(self.graph, o.target)) for o in self.outputs}
        return {k: torch.cat([f[k] for f in found]) for k in found[0]}

    def _check_tta(self) -> None:
        if not tta_enabled(self.plan.evaluate):
            raise TrickUsageError(f"test-time augmentation uses the views of the spec's `evaluate {{ tta ... }}` block, and {self.run_dir / 'spec.trick'} has none; add one (e.g. evaluate {{ tta hflip }}) and train again, or leave out --tta")
        if len(self.inputs.shape) != 3:
            raise TrickUsageError(f"test-time augmentation needs images [C, H, W]; this model takes {ir.show_shape(self.inputs.shape)}")
        if any(o.regression for o in self.outputs):
            raise TrickUsageError("test-time augmentation averages class probabilities; this model has a regression output")

    def predict(self, x: Any, weights: str | None = None, tta: bool = False) -> Prediction | dict[str, Prediction]:
        """Predictions for raw inputs x [N, *input shape] (as the data gave them: the run's
        normalization is applied here). A Prediction for a model without heads, else a dict
        of them by target; `weights` "best" or "last" (default: the loaded ones); `tta` averages
        the softmax over the spec's test-time views."""
        outputs = self.forward(x, weights, tta)
        found = {o.target: prediction(o, outputs[o.target], log_probs=tta) for o in self.outputs}
        return found if self.multi else found["label"]


def prediction(output: Output, out: torch.Tensor, log_probs: bool = False) -> Prediction:
    """An output's Prediction from the model's output for it (logits, or log-probabilities)."""
    if output.regression:
        return Prediction(output, output.values(out))
    probabilities = (out.double().exp() if log_probs else F.softmax(out.double(), dim=1)).numpy()
    names = np.array(output.classes, dtype=object)
    return Prediction(output, names[probabilities.argmax(1)] if len(probabilities) else names[:0], probabilities)


def _check_weights(weights: str) -> str:
    if weights not in WEIGHTS:
        raise TrickUsageError(f"weights must be best or last, found '{weights}'")
    return weights


def load(run_dir: str | Path, program, weights: str = "best", device: str | torch.device = "cpu") -> Loaded:
    """A run folder, ready to predict, given its compiled program (compiler/run_spec.py)."""
    return Loaded(run_dir, program, weights, device)


# ---- predictions.csv ------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return format(float(value), ".8g")


def prediction_rows(ids: tuple[str, list], predictions: list[Prediction], all_probs: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of predictions.csv: the id column, then per output its column (class
    name or value) and, for a classifier, `<column>_probability` (with `all_probs`, also
    `<column>_probability_<class>` for every class)."""
    id_name, id_values = ids
    header = [id_name]
    columns: list[list[str]] = [[str(v) for v in id_values]]
    for p in predictions:
        name = p.output.column
        if p.output.regression:
            values = p.values if p.values.ndim == 1 else None
            if values is not None:
                header.append(name)
                columns.append([_number(v) for v in values])
            else:
                for k in range(p.values.shape[1]):
                    header.append(f"{name}_{k + 1}")
                    columns.append([_number(v) for v in p.values[:, k]])
            continue
        header += [name, f"{name}_probability"]
        columns += [[str(v) for v in p.values], [f"{v:.6f}" for v in p.probability]]
        if all_probs:
            for k, cls in enumerate(p.output.classes):
                header.append(f"{name}_probability_{cls}")
                columns.append([f"{v:.6f}" for v in p.probabilities[:, k]])
    return header, [list(row) for row in zip(*columns)]


def write_csv(path: str | Path | TextIO, header: list[str], rows: list[list[str]]) -> None:
    """A CSV file (or an open text stream) with a header row; a problem writing a file is a
    TrickUsageError."""
    if hasattr(path, "write"):
        writer = csv.writer(path, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return
    try:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as err:
        raise TrickUsageError(f"cannot write {path}: {err.strerror or err}") from None
