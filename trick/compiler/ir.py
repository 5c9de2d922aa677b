"""The IR: a ModelGraph (the network) and a TrainingPlan (everything else), as plain data.

Frozen dataclasses that round-trip through JSON (`to_json` / `from_json`) and keep the span
of the clause each part came from, so that an error found late (a shape mismatch while
building, a NaN while training) still points at the spec line. Every default is resolved
here: the plan says exactly what will run.
"""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from ..dsl.diagnostics import Span

Shape = tuple[int, ...]


def show_shape(shape: Shape) -> str:
    """A shape as messages, summaries and pictures write it: `[1, 40]`."""
    return "[" + ", ".join(map(str, shape)) + "]"


# ---- the network --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One layer of the network (or a residual block, whose `body` holds its layers)."""

    op: str  # the registry name: dense, conv, batchnorm, ..., residual
    name: str  # the submodule's name (state_dict prefix): conv1, block2_conv, features, ...
    args: dict[str, Any]  # every argument of the op, defaults resolved
    input: Shape
    output: Shape
    params: int  # trainable parameters (of the body too)
    span: Span
    label: str | None = None  # the label of the line whose output this layer gives
    body: tuple[Layer, ...] = ()
    role: str | None = None  # from the registry: weights, norm, activation, noise, reshape, structure


@dataclass(frozen=True)
class Head:
    """An output head of a multi-task model: layers on the shared trunk, and its loss."""

    target: str  # `label` or a derived target
    layers: tuple[Layer, ...]
    loss: str  # cross_entropy or mse
    weight: float
    smoothing: float
    classes: int | None  # output width, for cross entropy
    span: Span


@dataclass(frozen=True)
class ModelGraph:
    name: str  # the spec's name
    input: Shape
    layers: tuple[Layer, ...]  # the trunk (the whole network when there are no heads)
    heads: tuple[Head, ...]
    output: Shape  # of the trunk
    span: Span

    def all_layers(self) -> list[Layer]:
        """Every layer, residual bodies and heads included, in build order."""
        found: list[Layer] = []

        def walk(layers):
            for layer in layers:
                found.append(layer)
                walk(layer.body)

        walk(self.layers)
        for head in self.heads:
            walk(head.layers)
        return found

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers) + sum(l.params for h in self.heads for l in h.layers)

    def labels(self) -> dict[str, Layer]:
        return {layer.label: layer for layer in self.all_layers() if layer.label}

    def transferred(self, layers: int | None, labels: tuple[str, ...] | None) -> list[Layer]:
        """The layers `transfer` copies: the first K weight layers with the norms that follow
        each, counted in build order, those inside residual blocks too; or the parameterized
        layers of the labelled lines. A layer inside a residual block comes named by its
        submodule path (`residual1.dense2`), as the state_dict and get_submodule know it."""
        trunk = list(self.layers)
        if labels is not None:
            found: list[Layer] = []
            for label in labels:
                end = next((i for i, layer in enumerate(trunk) if layer.label == label), None)
                if end is None:
                    continue
                start = end
                while start > 0 and trunk[start - 1].span.line == trunk[end].span.line and trunk[start - 1].label is None:
                    start -= 1
                found += [layer for layer in trunk[start : end + 1] if layer.params]
            return found

        def in_order(layers: tuple[Layer, ...], prefix: str):
            for layer in layers:
                if layer.body:
                    yield from in_order(layer.body, f"{prefix}{layer.name}.")
                else:
                    yield dataclasses.replace(layer, name=prefix + layer.name) if prefix else layer

        found, count = [], 0
        for layer in in_order(self.layers, ""):
            if layer.role == "weights":
                count += 1
                if count > (layers or 0):
                    break
                found.append(layer)
            elif layer.role == "norm" and count and layer.params:
                found.append(layer)
        return found


def regressor_shape(guided: Shape, hint: Shape, kind: str) -> tuple[int, int] | str:
    """The FitNets regressor r for guided -> hint: (kernel size, output channels) of a conv,
    (inputs, outputs) of a dense layer; or why it cannot be built."""
    if kind == "dense":
        return _prod(guided), _prod(hint)
    if kind != "conv":
        return f"no regressor '{kind}'; use 'regressor conv' or 'regressor dense'"
    if len(guided) != len(hint) or len(guided) not in (2, 3):
        return f"a conv regressor needs the guided layer {show_shape(guided)} and the hint {show_shape(hint)} to be both sequences or both images; use 'regressor dense'"
    if guided[1:] != hint[1:] and len(set(g - h for g, h in zip(guided[1:], hint[1:]))) != 1:
        return f"a conv regressor cannot map {show_shape(guided)} to {show_shape(hint)} with a square kernel; use 'regressor dense'"
    k = guided[1] - hint[1] + 1
    if k < 1:
        return f"the guided layer {show_shape(guided)} is smaller than the hint {show_shape(hint)}; a conv regressor cannot grow it; use 'regressor dense'"
    return k, hint[0]


def _prod(shape: Shape) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


# ---- the training plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A clause with a chosen kind and resolved arguments: `optimizer adamw lr=...`."""

    kind: str
    args: dict[str, Any]
    span: Span


@dataclass(frozen=True)
class Target:
    """`target NAME = EXPR`; `expr` is a JSON tree: number, "label", or [op, left, right] / ["neg", x]."""

    name: str
    expr: Any
    span: Span


@dataclass(frozen=True)
class DataPlan:
    source: Step  # kind mnist1d / digits / playground / synthetic_images / file
    validation: float  # fraction of train held out (0: none)
    test: float | None  # fraction held out as test (None: the source's own test split)
    normalize: Step | None  # kind zscore / minmax, args {per}
    classes: tuple[int, ...] | None
    train_fraction: float
    targets: tuple[Target, ...]
    base_dir: str  # where relative data paths are resolved
    span: Span
    columns: tuple[str, ...] = ()  # per-sample data columns to load besides x and y (curriculum scores)
    regression: tuple[str, ...] = ()  # the targets that are numbers (regression_targets), not classes


REGRESSION_LOSSES = ("mse", "l1", "huber")  # on one output: a regressor (clauses/train.py)
CLASSIFIER_METRICS = ("loss", "accuracy")
REGRESSION_METRICS = ("loss", "mse", "mae", "r2")


def regression_targets(graph: "ModelGraph | None", loss: str) -> tuple[str, ...]:
    """The targets the model regresses (numbers, not classes): each head whose loss is a
    regression loss on one output, or, without heads, `label` when `loss` is one and the
    model has one output."""
    if graph is None:
        return ()
    if graph.heads:
        return tuple(h.target for h in graph.heads if h.loss in REGRESSION_LOSSES and h.classes == 1)
    return ("label",) if loss in REGRESSION_LOSSES and graph.output == (1,) else ()


def recorded_metrics(graph: "ModelGraph", loss: str) -> list[str]:
    """The metric names of one split that a run of this model records (`loss`, `accuracy`;
    `mse`, `mae`, `r2` for a regressor; per head `<target>.<metric>` with several heads)."""
    regressed = regression_targets(graph, loss)
    if not graph.heads:
        return list(REGRESSION_METRICS if regressed else CLASSIFIER_METRICS)
    names = ["loss"]
    for h in graph.heads:
        names += [f"{h.target}.{m}" for m in (REGRESSION_METRICS if h.target in regressed else CLASSIFIER_METRICS)]
    return names


@dataclass(frozen=True)
class EarlyStop:
    monitor: str
    mode: str  # min or max (auto resolved)
    patience: int
    min_delta: float
    restore: str  # best or last
    span: Span


@dataclass(frozen=True)
class Evaluate:
    tta_hflip: bool
    crops: int
    scales: tuple[int, ...]
    span: Span | None


@dataclass(frozen=True)
class Transfer:
    source: str  # import alias
    layers: int | None
    labels: tuple[str, ...] | None
    freeze: bool
    lr_scale: float
    span: Span


@dataclass(frozen=True)
class Distill:
    teacher: str  # import alias
    hints: tuple[tuple[str, str], ...]  # (teacher label, student label)
    regressor: str
    hint_epochs: int
    temperature: float
    weight: float
    span: Span


@dataclass(frozen=True)
class Curriculum:
    score: Step  # kind loss (args model) / self / column (args name)
    pace: Step  # kind linear / root / step, args start, epochs (steps)
    span: Span


@dataclass(frozen=True)
class ImportPlan:
    alias: str
    path: str  # absolute
    name: str  # the imported spec's name
    content_hash: str  # of the file and everything it imports
    span: Span


@dataclass(frozen=True)
class TrainingPlan:
    spec: str
    spec_path: str | None
    seed: int
    device: str
    data: DataPlan
    augment: tuple[Step, ...]
    epochs: int
    batch: int
    optimizer: Step
    schedule: Step  # args include warmup
    loss: Step  # cross_entropy (smoothing) or mse
    regularizers: tuple[Step, ...]  # kind l1 / l2, args strength, include
    weight_noise: float
    early_stop: EarlyStop | None
    clip_grad: float | None
    adversarial: Step | None
    evaluate: Evaluate
    transfer: Transfer | None
    distill: Distill | None
    curriculum: Curriculum | None
    plots: tuple[str, ...]
    imports: tuple[ImportPlan, ...]
    batch_span: Span | None = None  # where the spec sets the batch (None: the default)
    train_span: Span | None = None  # the train block (None: the spec has none)
    compile: str | None = None  # torch.compile's mode for the training step (None: eager)
    precision: str = "fp32"  # fp32, or autocast to bf16 / fp16
    channels_last: bool = False  # 2-D convolutions on NHWC tensors
    speed_span: Span | None = None  # the first of compile / precision / channels_last, for run-time errors


# ---- JSON ----------------------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """Plain JSON data for an IR object (dataclasses become objects, tuples lists)."""
    if isinstance(value, Span):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(cls: Any, data: Any) -> Any:
    """The IR object of type `cls` that `to_json` turned into `data`."""
    origin = typing.get_origin(cls)
    if cls is Any:
        return data
    if cls is Span:
        return Span.from_json(data)
    if origin in (Union, types.UnionType):
        if data is None:
            return None
        options = [a for a in typing.get_args(cls) if a is not type(None)]
        return from_json(options[0], data)
    if origin is tuple:
        args = typing.get_args(cls)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v) for v in data)
        return tuple(from_json(a, v) for a, v in zip(args, data))
    if origin is dict:
        _, value_type = typing.get_args(cls)
        return {k: from_json(value_type, v) for k, v in data.items()}
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: from_json(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data})
    if cls is float and isinstance(data, int):
        return float(data)
    return data


def plain(value: Any) -> Any:
    """Argument values as JSON keeps them (tuples become lists), so that plans round-trip."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


# ---- target expressions -------------------------------------------------------------------------------
#
# The one evaluator and the one printer of `Target.expr` trees. Plain Python over the
# `operator` module, so that the same code computes a value on Python numbers (the compiler)
# and elementwise on numpy arrays (the runtime, for all samples at once).

_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "%": operator.mod}
_COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
EXPR_PRECEDENCE = {**dict.fromkeys(_COMPARISONS, 1), "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}


def evaluate_expr(expr: Any, names: dict[str, Any]) -> Any:
    """The value of a `Target.expr` tree, with `names` giving the value of each name.

    Works alike on Python numbers and on numpy arrays (elementwise). A comparison gives 0 or 1:
    an int for numbers, an integer array for arrays. An unknown name raises KeyError (with the
    name); a division by zero raises ZeroDivisionError on Python numbers, and on arrays the
    FloatingPointError of numpy when the caller asks for it (np.errstate(divide="raise",
    invalid="raise")); callers turn these into errors at the target's clause.
    """
    if isinstance(expr, str):
        return names[expr]
    if not isinstance(expr, (list, tuple)):
        return expr
    if expr[0] == "neg":
        return -evaluate_expr(expr[1], names)
    op, left, right = expr[0], evaluate_expr(expr[1], names), evaluate_expr(expr[2], names)
    if op in _COMPARISONS:
        return _COMPARISONS[op](left, right) * 1
    return _ARITHMETIC[op](left, right)


def expr_text(expr: Any) -> str:
    """A `Target.expr` tree as the spec would write it, with only the parentheses it needs."""

    def text(e: Any, outer: int = 0) -> str:
        if isinstance(e, str):
            return e
        if not isinstance(e, (list, tuple)):
            return f"{e:g}" if isinstance(e, float) else str(e)
        if e[0] == "neg":
            return "-" + text(e[1], 3)
        p = EXPR_PRECEDENCE[e[0]]
        # Arithmetic is left-associative (a - b - c needs no parentheses, a - (b - c) does);
        # comparisons do not chain, so a comparison inside one always gets them.
        s = f"{text(e[1], p - 1 if p > 1 else p)} {e[0]} {text(e[2], p)}"
        return f"({s})" if p <= outer else s

    return text(expr)
