"""Lowering a checked spec to the IR, with shape inference (no torch).

Each layer of the registry has a shape rule here: input shape and arguments in, output shape
and parameter count out, or a `ShapeError` whose message states the shapes. Rules never
import torch, so `trickc check` runs them too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import keyword
import math
import os
from typing import Any, Callable

from ..dsl import ast
from ..dsl.diagnostics import Diagnostic, Span, TrickCheckError
from . import ir
from .check import SOURCES_WITH_TEST_SPLIT, Bound, CheckedSpec, ModelItem

Shape = tuple[int, ...]

# Samples of each built-in source (without the batch), and their class counts.
SOURCE_SHAPES: dict[str, Callable[[dict], Shape]] = {
    "mnist1d": lambda a: (40,),
    "digits": lambda a: (64,),
    "playground": lambda a: (2,),
    "synthetic_images": lambda a: (3, a["size"], a["size"]),
}
SOURCE_CLASSES: dict[str, Callable[[dict], int]] = {
    "mnist1d": lambda a: 10,
    "digits": lambda a: 10,
    "playground": lambda a: 2,
    "synthetic_images": lambda a: a["classes"],
}

# Attribute names a submodule must not take (they would shadow nn.Module's own).
RESERVED_NAMES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule
    half heads ipu load_state_dict modules mtia named_buffers named_children named_modules
    named_parameters parameters register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu
    zero_grad""".split()
)


def safe_name(label: str) -> str:
    """A label as a submodule name: Python keywords and nn.Module's own names get a '_'."""
    if label.startswith("_"):
        return "layer" + label
    return label + "_" if keyword.iskeyword(label) or label in RESERVED_NAMES else label


class ShapeError(Exception):
    """A layer cannot take its input; the message states the shapes."""


def _show(shape: Shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


# ---- shape rules: (input shape, args, previous op) -> (output shape, parameters) ------------------------


def _vector(op: str, shape: Shape, previous: str | None) -> int:
    if len(shape) != 1:
        after = f" after {previous}" if previous else ""
        fix = "flatten or last" if previous in ("gru", "lstm") else "flatten"
        raise ShapeError(f"{op}{after} needs {fix} (input is {_show(shape)})")
    return shape[0]


def _spatial(op: str, shape: Shape, what: str = "a sequence [C, L] or an image [C, H, W]") -> None:
    if len(shape) not in (2, 3):
        raise ShapeError(f"{op} needs {what} (input is {_show(shape)})")


def _dense(shape, a, previous):
    features = _vector("dense", shape, previous)
    return (a["units"],), features * a["units"] + (a["units"] if a["bias"] else 0)


def _conv(shape, a, previous):
    if len(shape) not in (2, 3):
        raise ShapeError(f"conv needs channels: a sequence [C, L] or an image [C, H, W] (input is {_show(shape)})")
    channels, *space = shape
    k, stride, pad = a["k"], a["stride"], a["pad"]
    if pad == "same":
        if stride != 1:
            raise ShapeError(f"conv pad=same needs stride=1 (stride is {stride})")
        out = list(space)
    else:
        out = [(n + 2 * pad - k) // stride + 1 for n in space]
        if any(n + 2 * pad < k for n in space):
            raise ShapeError(f"conv k={k} is larger than the padded input {_show(shape)} (pad={pad})")
    params = channels * a["channels"] * k ** len(space) + (a["channels"] if a["bias"] else 0)
    return (a["channels"], *out), params


def _pool(op):
    def rule(shape, a, previous):
        _spatial(op, shape)
        channels, *space = shape
        if a["size"] == "global":
            return (channels,), 0
        size = a["size"]
        stride = a["stride"] or size
        if any(n < size for n in space):
            raise ShapeError(f"{op} {size} is larger than the input {_show(shape)}")
        return (channels, *[(n - size) // stride + 1 for n in space]), 0

    return rule


def _same(shape, a, previous):
    return shape, 0


def _flatten(shape, a, previous):
    return (math.prod(shape),), 0


def _last(shape, a, previous):
    if len(shape) != 2:
        raise ShapeError(f"last needs a sequence [C, L] (input is {_show(shape)})")
    return (shape[0],), 0


def _channels_affine(op, ranks=(1, 2, 3)):
    def rule(shape, a, previous):
        if len(shape) not in ranks:
            raise ShapeError(f"{op} needs channels: a sequence [C, L] or an image [C, H, W] (input is {_show(shape)})")
        return shape, (2 * shape[0] if a["affine"] else 0)

    return rule


def _layernorm(shape, a, previous):
    return shape, (2 * math.prod(shape) if a["affine"] else 0)


def _groupnorm(shape, a, previous):
    channels = shape[0]
    if channels % a["groups"]:
        raise ShapeError(f"groupnorm {a['groups']}: {channels} channels do not split into {a['groups']} groups")
    return shape, (2 * channels if a["affine"] else 0)


def _recurrent(op, gates):
    def rule(shape, a, previous):
        if len(shape) != 2:
            raise ShapeError(f"{op} needs a sequence [C, L] (input is {_show(shape)})")
        features, length = shape
        hidden, directions = a["hidden"], 2 if a["bidirectional"] else 1
        params = 0
        for layer in range(a["layers"]):
            inputs = features if layer == 0 else hidden * directions
            per_direction = gates * hidden * (inputs + hidden)
            if a["norm"] == "layer":  # gain and bias of the two layer norms (and of the cell, for LSTM)
                per_direction += 2 * 2 * gates * hidden + (2 * hidden if op == "lstm" else 0)
            else:
                per_direction += 2 * gates * hidden
            params += per_direction * directions
        return (hidden * directions, length), params

    return rule


SHAPE_RULES: dict[str, Callable] = {
    "dense": _dense,
    "conv": _conv,
    "maxpool": _pool("maxpool"),
    "avgpool": _pool("avgpool"),
    "flatten": _flatten,
    "last": _last,
    "relu": _same,
    "leaky_relu": _same,
    "elu": _same,
    "gelu": _same,
    "silu": _same,
    "tanh": _same,
    "sigmoid": _same,
    "batchnorm": _channels_affine("batchnorm"),
    "layernorm": _layernorm,
    "instancenorm": _channels_affine("instancenorm", ranks=(2, 3)),
    "groupnorm": _groupnorm,
    "dropout": _same,
    "noise": _same,
    "gru": _recurrent("gru", 3),
    "lstm": _recurrent("lstm", 4),
}

# Augmentations: the rank of sample they need.
AUGMENT_RANKS = {
    "shift": (2, "sequences [C, L]"),
    "flip": (2, "sequences [C, L]"),
    "hflip": (3, "2-D images"),
    "crop": (3, "2-D images"),
    "scale": (3, "2-D images"),
    "color": (3, "2-D images"),
    "affine": (3, "2-D images"),
}


# ---- lowering -------------------------------------------------------------------------------------------


class _Lowering:
    def __init__(self, spec: CheckedSpec):
        self.spec = spec
        self.errors: list[Diagnostic] = []
        self.taken: set[str] = set()
        self.counters: dict[str, int] = {}

    def error(self, span: Span, message: str) -> None:
        self.errors.append(Diagnostic(span, message))

    # -- names ---------------------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        """The first free name `base1`, `base2`, ... (never a label of the spec)."""
        n = self.counters.get(base, 0)
        while True:
            n += 1
            name = f"{base}{n}"
            if name not in self.taken and name not in self.labels:
                self.counters[base] = n
                self.taken.add(name)
                return name

    def line_names(self, ops: list[str], label: str | None) -> list[str]:
        """Submodule names for one line: `conv1, relu1`, or from its label: `block2_conv, ...`."""
        if label is None:
            return [self.fresh(op) for op in ops]
        base = safe_name(label)
        wanted = [base] if len(ops) == 1 else []
        if not wanted:
            seen: dict[str, int] = {}
            for op in ops:
                seen[op] = seen.get(op, 0) + 1
                wanted.append(f"{base}_{op}" + (str(seen[op]) if seen[op] > 1 else ""))
        names = []
        for name in wanted:
            if name in self.taken:
                name = self.fresh(name + "_")
            self.taken.add(name)
            names.append(name)
        return names

    # -- the model -------------------------------------------------------------------------------------

    def model(self) -> ir.ModelGraph | None:
        spec = self.spec
        self.labels = set(spec.labels())
        block = spec.program.block("model")
        items = spec.model
        if not items or items[0].bound.name != "input":
            return None
        shape = tuple(items[0].bound.values["shape"])
        self.check_data_shape(shape, items[0].bound)
        trunk_items = [i for i in items[1:] if i.bound.name != "head"]
        layers, out = self.sequence(trunk_items, shape)
        heads = []
        if out is not None:
            for item in (i for i in items if i.bound.name == "head"):
                head = self.head(item, out)
                if head is not None:
                    heads.append(head)
            if not any(i.bound.name == "head" for i in items):
                self.check_output(out, layers[-1] if layers else None)
        if out is None:
            return None
        return ir.ModelGraph(spec.program.name or "model", shape, tuple(layers), tuple(heads), out, block.span)

    def sequence(self, items: list[ModelItem], shape: Shape) -> tuple[list[ir.Layer], Shape | None]:
        """Lower items in order from `shape`; the output shape, or None after an error."""
        layers: list[ir.Layer] = []
        previous: str | None = None
        for line_items, label in _group_lines(items):
            first = line_items[0].bound
            if first.name == "repeat":
                for _ in range(first.values["times"]):
                    inner, shape = self.sequence(line_items[0].body or [], shape)
                    layers += inner
                    if shape is None:
                        return layers, None
                if label is not None and layers:
                    layers[-1] = dataclasses.replace(layers[-1], label=label)
                previous = layers[-1].op if layers else previous
                continue
            names = self.line_names([i.bound.name for i in line_items], label)
            for index, (item, name) in enumerate(zip(line_items, names)):
                bound = item.bound
                layer_label = label if index == len(line_items) - 1 else None
                if bound.name == "residual":
                    inner, out = self.sequence(item.body or [], shape)
                    if out is None:
                        return layers, None
                    if out != shape:
                        self.error(bound.clause.name_span, f"residual block changes the shape {_show(shape)} -> {_show(out)}")
                        return layers, None
                    layers.append(ir.Layer("residual", name, {}, shape, out, sum(l.params for l in inner), bound.span, layer_label, tuple(inner)))
                    previous = "residual"
                    continue
                try:
                    out, params = SHAPE_RULES[bound.name](shape, bound.values, previous)
                except ShapeError as err:
                    self.error(bound.clause.name_span, str(err))
                    return layers, None
                layers.append(ir.Layer(bound.name, name, ir.plain(dict(bound.values)), shape, out, params, bound.span, layer_label))
                shape, previous = out, bound.name
        return layers, shape

    def head(self, item: ModelItem, trunk: Shape) -> ir.Head | None:
        values = item.bound.values
        layers, out = self.sequence(item.body or [], trunk)
        if out is None:
            return None
        target = values["target"]
        classes = self.target_classes(target)
        if values["loss"] == "cross_entropy":
            if len(out) != 1:
                self.error(item.bound.clause.name_span, f"head {target} must end in a vector of class scores (its output is {_show(out)})")
                return None
            if classes is not None and out[0] != classes:
                span = layers[-1].span if layers else item.bound.clause.name_span
                self.error(span, f"head {target} has {out[0]} outputs, but '{target}' has {classes} classes")
                return None
        smoothing = values["smoothing"]
        if smoothing is None:
            loss = self.spec.clause("train", "loss")
            smoothing = loss.values.get("smoothing", 0.0) if loss is not None and loss.kind == "cross_entropy" else 0.0
        return ir.Head(target, tuple(layers), values["loss"], float(values["weight"]), float(smoothing), out[0] if len(out) == 1 else None, item.bound.span)

    def check_output(self, out: Shape, last: ir.Layer | None) -> None:
        loss = self.spec.clause("train", "loss")
        if loss is not None and loss.kind != "cross_entropy":
            return
        classes = self.target_classes("label")
        span = last.span if last is not None else self.spec.program.block("model").name_span
        if len(out) != 1:
            fix = "flatten or avgpool global, then a dense layer" if len(out) > 1 else ""
            self.error(span, f"the model must end in a vector of class scores, but its output is {_show(out)}; add {fix}")
        elif classes is not None and out[0] != classes:
            self.error(span, f"the model has {out[0]} outputs, but the data has {classes} classes")

    # -- data ------------------------------------------------------------------------------------------

    def source(self) -> Bound | None:
        return self.spec.clause("data", "source")

    def check_data_shape(self, shape: Shape, input_bound: Bound) -> None:
        source = self.source()
        if source is None or source.kind not in SOURCE_SHAPES:
            return
        sample = SOURCE_SHAPES[source.kind](source.values)
        if math.prod(sample) != math.prod(shape):
            self.error(
                input_bound.span_of("shape"),
                f"the input {_show(shape)} has {math.prod(shape)} values, but {source.kind} samples are {_show(sample)} ({math.prod(sample)} values)",
            )

    def target_classes(self, target: str) -> int | None:
        """Number of classes of `label` or a derived target, when the data says so."""
        source = self.source()
        if source is None or source.kind not in SOURCE_CLASSES:
            return None
        classes = self.spec.clause("data", "classes")
        count = len(classes.values["labels"]) if classes is not None else SOURCE_CLASSES[source.kind](source.values)
        if target == "label":
            return count
        values = {"label": list(range(count))}
        for t in self.spec.targets:
            try:
                values[t.name] = [_evaluate(t.expr, {k: v[i] for k, v in values.items()}) for i in range(count)]
            except (ZeroDivisionError, KeyError):
                return None
            if t.name == target:
                result = values[t.name]
                if all(float(v).is_integer() and v >= 0 for v in result):
                    return int(max(result)) + 1
                return None
        return None

    def augment(self, shape: Shape) -> tuple[ir.Step, ...]:
        """The augmentation steps, checked at their clauses against the samples they get.

        The sample's shape is followed through the steps (`crop` and `scale` give SIZE x SIZE
        images), since what the last one leaves is what the model takes. The sizes of the
        `evaluate` block's `scales` are checked here too: they resize test images the same way.
        """
        steps = []
        current, resized_by = shape, None  # the sample as the steps so far leave it; who resized it
        too_large = False  # a crop already reported: the size it leaves is not checked again
        for bound in self.spec.blocks.get("augment", ()):
            need = AUGMENT_RANKS.get(bound.name)
            if need is not None and len(shape) != need[0]:
                self.error(bound.clause.name_span, f"{bound.name} needs {need[1]}, the data is {_show(shape)}")
                continue
            values = dict(bound.values)
            if bound.name == "crop":
                padded = [n + 2 * values["pad"] for n in current[1:]]
                if values["size"] > min(padded):
                    self.error(bound.span_of("size"), f"crop {values['size']} is larger than the padded image {_show(tuple(padded))}")
                    too_large = True
            if bound.name == "scale" and values["short_side"][0] < values["size"]:
                self.error(bound.span_of("short_side"), f"the short side must be at least the crop size {values['size']} (it can be {values['short_side'][0]})")
            if bound.name in ("crop", "scale"):
                current, resized_by = (current[0], values["size"], values["size"]), bound
            if bound.name == "color" and shape[0] != 3:
                for key, neutral in (("saturation", (1.0, 1.0)), ("hue", (0.0, 0.0))):
                    if tuple(values[key]) != neutral:
                        self.error(bound.span_of(key), f"color {key} needs RGB images (3 channels), the data is {_show(shape)}")
            for key in ("rotate", "shear"):
                if isinstance(values.get(key), (int, float)):
                    values[key] = (-float(values[key]), float(values[key]))
            if bound.name == "affine" and (values["shear"][0] <= -90 or values["shear"][1] >= 90):
                low, high = values["shear"]
                self.error(
                    bound.span_of("shear"),
                    f"shear angles must lie strictly between -90 and 90 degrees (the shear factor tan(90°) is infinite), the range is {low:g}..{high:g}",
                )
            steps.append(ir.Step(bound.name, ir.plain(values), bound.span))
        if resized_by is not None and not too_large and current != shape:
            size = resized_by.values["size"]
            self.error(resized_by.span_of("size"), f"{resized_by.name} {size} makes {_show(current)} images, but the model's input is {_show(shape)}")
        scales = self.spec.clause("evaluate", "scales")
        if scales is not None and len(shape) == 3:
            small = [s for s in scales.values["sizes"] if s < min(shape[1:])]
            if small:
                self.error(
                    scales.span_of("sizes"),
                    f"scale {small[0]} is smaller than the images' short side {min(shape[1:])}; the test views are crops of the model's input {_show(shape)}",
                )
        return tuple(steps)

    # -- the plan -------------------------------------------------------------------------------------

    def plan(self, graph: ir.ModelGraph | None) -> ir.TrainingPlan:
        spec = self.spec
        get = spec.clause

        def value(block: str, clause: str, param: str, default: Any) -> Any:
            bound = get(block, clause)
            return bound.values[param] if bound is not None else default

        def step(block: str, clause: str, default_kind: str, defaults: dict) -> ir.Step:
            bound = get(block, clause)
            if bound is None:
                return ir.Step(default_kind, defaults, spec.program.block(block).span if spec.program.block(block) else _nowhere(spec))
            return ir.Step(bound.kind, ir.plain(dict(bound.values)), bound.span)

        early = get("train", "early_stop")
        early_stop = None
        if early is not None:
            v = early.values
            mode = v["mode"] if v["mode"] != "auto" else ("min" if v["monitor"].endswith("loss") else "max")
            early_stop = ir.EarlyStop(v["monitor"], mode, v["patience"], float(v["min_delta"]), v["restore"], early.span)

        source = self.source()
        validation = get("data", "validation")
        test = get("data", "test")
        normalize = get("data", "normalize")
        classes = get("data", "classes")
        data_block = spec.program.block("data")
        base_dir = str(spec.loaded.path.parent) if spec.loaded.path is not None else os.getcwd()
        data = ir.DataPlan(
            source=ir.Step(source.kind, ir.plain(dict(source.values)), source.span) if source else ir.Step("none", {}, _nowhere(spec)),
            validation=float(validation.values["fraction"]) if validation else (0.1 if early_stop and early_stop.monitor.startswith("val.") else 0.0),
            test=float(test.values["fraction"]) if test else (None if source is not None and source.kind in SOURCES_WITH_TEST_SPLIT else 0.2),
            normalize=ir.Step(normalize.kind, ir.plain(dict(normalize.values)), normalize.span) if normalize else None,
            classes=tuple(classes.values["labels"]) if classes else None,
            train_fraction=float(value("data", "train_fraction", "fraction", 1.0)),
            targets=tuple(ir.Target(t.name, _expr_json(t.expr), t.span) for t in spec.targets),
            base_dir=base_dir,
            span=data_block.span if data_block else _nowhere(spec),
            columns=tuple(b.values["name"] for b in spec.blocks.get("curriculum", ()) if b.name == "score" and b.kind == "column"),
        )

        schedule = step("train", "schedule", "constant", {"warmup": 0})
        loss = step("train", "loss", "cross_entropy", {"smoothing": 0.0})
        regularizers = tuple(
            ir.Step(b.kind, ir.plain(dict(b.values)), b.span) for b in spec.blocks.get("train", ()) if b.name == "regularize"
        )
        clip = get("train", "clip_grad")
        adversarial = get("train", "adversarial")

        tta = get("evaluate", "tta")
        scales = get("evaluate", "scales")
        evaluate = ir.Evaluate(
            tta_hflip="hflip" in (tta.extra if tta else []),
            crops=tta.values["crops"] if tta else 1,
            scales=tuple(scales.values["sizes"]) if scales else (),
            span=spec.program.block("evaluate").span if spec.program.block("evaluate") else None,
        )
        if (evaluate.tta_hflip or evaluate.crops > 1 or evaluate.scales) and graph is not None and len(graph.input) != 3:
            self.error(evaluate.span, f"test-time augmentation needs 2-D images, the data is {_show(graph.input)}")

        transfer = None
        source_clause = get("transfer", "from")
        if source_clause is not None:
            v = source_clause.values
            freeze = get("transfer", "freeze")
            transfer = ir.Transfer(
                v["model"],
                v["layers"],
                tuple(v["labels"]) if v["labels"] is not None else None,
                bool(freeze.values["value"]) if freeze else False,
                float(value("transfer", "lr_scale", "scale", 1.0)),
                source_clause.span,
            )

        distill = None
        teacher = get("distill", "teacher")
        if teacher is not None:
            hints = tuple((b.values["hint"].split(".", 1)[1], b.arrow) for b in spec.blocks["distill"] if b.name == "hint" and b.arrow)
            temperature = get("distill", "temperature")
            distill = ir.Distill(
                teacher.values["model"],
                hints,
                value("distill", "regressor", "type", "conv"),
                value("distill", "hint_epochs", "n", 10),
                float(temperature.values["value"]) if temperature else 4.0,
                float(temperature.values["weight"]) if temperature else 0.5,
                spec.program.block("distill").span,
            )

        curriculum = None
        score = get("curriculum", "score")
        if score is not None:
            curriculum = ir.Curriculum(
                ir.Step(score.kind, ir.plain(dict(score.values)), score.span),
                step("curriculum", "pace", "linear", {"start": 0.25, "epochs": 10}),
                spec.program.block("curriculum").span,
            )

        plot = get("report", "plot")
        return ir.TrainingPlan(
            spec=spec.program.name or "spec",
            spec_path=str(spec.loaded.path) if spec.loaded.path is not None else None,
            seed=value("train", "seed", "value", 0),
            device=value("train", "device", "name", "auto"),
            data=data,
            augment=self.augment(graph.input if graph is not None else ()) if graph is not None else (),
            epochs=value("train", "epochs", "n", 10),
            batch=value("train", "batch", "size", 32),
            optimizer=step("train", "optimizer", "adam", {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0}),
            schedule=schedule,
            loss=loss,
            regularizers=regularizers,
            weight_noise=float(value("train", "weight_noise", "std", 0.0)),
            early_stop=early_stop,
            clip_grad=float(clip.values["max_norm"]) if clip else None,
            adversarial=ir.Step(adversarial.kind, ir.plain(dict(adversarial.values)), adversarial.span) if adversarial else None,
            evaluate=evaluate,
            transfer=transfer,
            distill=distill,
            curriculum=curriculum,
            plots=tuple(plot.extra) if plot else (),
            imports=tuple(self.imports()),
        )

    def imports(self):
        for imp in self.spec.program.imports:
            child = self.spec.imports.get(imp.alias)
            if child is None or child.loaded.path is None:
                continue
            yield ir.ImportPlan(imp.alias, str(child.loaded.path), child.program.name or imp.alias, content_hash(child), imp.span)


def _nowhere(spec: CheckedSpec) -> Span:
    return Span.point(spec.program.file, 1, 1)


def _group_lines(items: list[ModelItem]) -> list[tuple[list[ModelItem], str | None]]:
    """Model items grouped by the line they came from (a label names the line's output)."""
    groups: list[tuple[list[ModelItem], str | None]] = []
    last_line = None
    for item in items:
        key = (item.bound.span.file, _line_of(item))
        if groups and key == last_line and item.bound.name not in ("repeat", "residual"):
            groups[-1][0].append(item)
        else:
            groups.append(([item], None))
        last_line = key
        if item.label is not None:
            groups[-1] = (groups[-1][0], item.label)
    return groups


def _line_of(item: ModelItem) -> int:
    return item.bound.clause.span.line


def _expr_json(expr) -> Any:
    if isinstance(expr, ast.Number):
        return expr.value
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.Neg):
        return ["neg", _expr_json(expr.operand)]
    return [expr.op, _expr_json(expr.left), _expr_json(expr.right)]


_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "<": lambda a, b: int(a < b),
    "<=": lambda a, b: int(a <= b),
    ">": lambda a, b: int(a > b),
    ">=": lambda a, b: int(a >= b),
    "==": lambda a, b: int(a == b),
    "!=": lambda a, b: int(a != b),
}


def _evaluate(expr, env: dict) -> float:
    if isinstance(expr, ast.Number):
        return expr.value
    if isinstance(expr, ast.Name):
        return env[expr.name]
    if isinstance(expr, ast.Neg):
        return -_evaluate(expr.operand, env)
    return _OPS[expr.op](_evaluate(expr.left, env), _evaluate(expr.right, env))


def content_hash(spec: CheckedSpec) -> str:
    """A hash of a spec file and, recursively, everything it imports."""
    digest = hashlib.sha256(spec.program.text.encode("utf-8"))
    for alias in sorted(spec.imports):
        child = spec.imports[alias]
        digest.update(f"\0{alias}\0".encode())
        digest.update((content_hash(child) if child is not None else "missing").encode())
    return digest.hexdigest()[:16]


def lower(spec: CheckedSpec) -> tuple[ir.ModelGraph | None, ir.TrainingPlan | None, list[Diagnostic]]:
    """The IR of a checked spec, and the shape errors found while building it."""
    lowering = _Lowering(spec)
    graph = lowering.model()
    plan = lowering.plan(graph)
    if graph is not None and not lowering.errors:
        from .objectives import cross_check

        lowering.errors += cross_check(spec, plan, graph)
    return graph, plan, lowering.errors


def lower_or_raise(spec: CheckedSpec) -> tuple[ir.ModelGraph, ir.TrainingPlan]:
    graph, plan, errors = lower(spec)
    if errors or graph is None or plan is None:
        raise TrickCheckError(errors or [Diagnostic(_nowhere(spec), "the model could not be built")])
    return graph, plan
